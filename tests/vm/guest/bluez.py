"""BlueZ inside the VM: a system bus, bluetoothd and btvirt's virtual LE
controllers, and the D-Bus calls a BLE test needs (python3-dbus, GLib loop).

Controllers are always named by their object path (/org/bluez/hciN), never
"the default one". Every wait is on state, with a timeout.
"""

import os
import shutil

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

from vmtest import wait_until

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)

BUS_SOCKET = "/run/dbus/system_bus_socket"
ADAPTER = "org.bluez.Adapter1"
DEVICE = "org.bluez.Device1"
ADV_MANAGER = "org.bluez.LEAdvertisingManager1"
PROPS = "org.freedesktop.DBus.Properties"


def pump(seconds):
    """Runs the GLib main loop for `seconds` (D-Bus calls to our objects and
    async replies are handled here)."""
    ctx = GLib.MainContext.default()
    fired = []
    GLib.timeout_add(max(1, int(seconds * 1000)), lambda: fired.append(1) and False)
    while not fired:
        ctx.iteration(True)


def wait(pred, timeout, what):
    return wait_until(pred, timeout, what, interval=0.05, pump=pump)


def _plain(v):
    """D-Bus values as JSON-friendly Python values (byte arrays as hex)."""
    if isinstance(v, dbus.Array) and v.signature == "y":
        return bytes(v).hex()
    if isinstance(v, (dbus.Dictionary, dict)):
        return {str(_plain(k)): _plain(x) for k, x in v.items()}
    if isinstance(v, (dbus.Array, list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, (dbus.String, dbus.ObjectPath)):
        return str(v)
    if isinstance(v, (dbus.Byte, dbus.Int16, dbus.UInt16, dbus.Int32, dbus.UInt32,
                      dbus.Int64, dbus.UInt64)):
        return int(v)
    return v


class Advertisement(dbus.service.Object):
    """An org.bluez.LEAdvertisement1 object for RegisterAdvertisement."""

    IFACE = "org.bluez.LEAdvertisement1"

    def __init__(self, bus, path, local_name=None, manufacturer_data=None, adv_type="peripheral"):
        self.path = path
        self.props = {"Type": dbus.String(adv_type)}
        if local_name:
            self.props["LocalName"] = dbus.String(local_name)
        if manufacturer_data:
            self.props["ManufacturerData"] = dbus.Dictionary(
                {dbus.UInt16(k): dbus.Array(v, signature="y")
                 for k, v in manufacturer_data.items()}, signature="qv")
        self.released = False
        super().__init__(bus, path)

    @dbus.service.method(PROPS, in_signature="s", out_signature="a{sv}")
    def GetAll(self, interface):
        if interface != self.IFACE:
            raise dbus.exceptions.DBusException("no such interface " + interface,
                                                name="org.freedesktop.DBus.Error.InvalidArgs")
        return self.props

    @dbus.service.method(IFACE, in_signature="", out_signature="")
    def Release(self):
        self.released = True


class BlueZ:
    """Starts dbus-daemon --system, bluetoothd and btvirt through procs
    (vmtest.Procs), so that they are stopped by PID at the end."""

    def __init__(self, procs):
        self.procs = procs
        self.bus = None
        self.adverts = []

    # -- processes

    def start_system_bus(self, timeout=15):
        os.makedirs("/run/dbus", exist_ok=True)
        self.procs.start("dbus-daemon", ["dbus-daemon", "--system", "--nofork", "--nopidfile"])

        def connect():
            self.procs.check()
            if not os.path.exists(BUS_SOCKET):
                return None
            try:
                return dbus.SystemBus()
            except dbus.exceptions.DBusException:
                return None

        self.bus = wait(connect, timeout, "the system bus at " + BUS_SOCKET)
        return self.bus

    def start_bluetoothd(self, timeout=20, debug=False):
        exe = "/usr/libexec/bluetooth/bluetoothd"
        if not os.path.exists(exe):
            exe = shutil.which("bluetoothd") or "/usr/sbin/bluetoothd"
        self.procs.start("bluetoothd", [exe, "-n"] + (["-d"] if debug else []))
        dbus_iface = dbus.Interface(self.bus.get_object("org.freedesktop.DBus",
                                                        "/org/freedesktop/DBus"),
                                    "org.freedesktop.DBus")

        def up():
            self.procs.check()
            return dbus_iface.NameHasOwner("org.bluez")

        wait(up, timeout, "bluetoothd to own org.bluez")

    def start_btvirt(self, count=2, timeout=30):
        """btvirt -L -l<count>: count LE-only controllers. Returns their
        adapter paths, sorted, once bluetoothd has all of them."""
        before = set(self.adapters())
        self.procs.start("btvirt", ["btvirt", "-L", "-l%d" % count])

        def new_adapters():
            self.procs.check()
            new = sorted(set(self.adapters()) - before)
            return new if len(new) >= count else None

        return wait(new_adapters, timeout, "%d btvirt controllers in bluetoothd" % count)

    # -- objects

    def objects(self):
        om = dbus.Interface(self.bus.get_object("org.bluez", "/"),
                            "org.freedesktop.DBus.ObjectManager")
        return om.GetManagedObjects()

    def adapters(self):
        """{adapter path: Adapter1 properties}."""
        return {str(p): _plain(ifs[ADAPTER]) for p, ifs in self.objects().items()
                if ADAPTER in ifs}

    def adapter(self, path):
        return _plain(self._props(path).GetAll(ADAPTER))

    def devices(self, adapter_path):
        """{device path: Device1 properties} of the devices under adapter_path."""
        return {str(p): _plain(ifs[DEVICE]) for p, ifs in self.objects().items()
                if DEVICE in ifs and str(ifs[DEVICE].get("Adapter")) == adapter_path}

    def _props(self, path):
        return dbus.Interface(self.bus.get_object("org.bluez", path), PROPS)

    # -- actions

    def power(self, path, on=True, timeout=15):
        props = self._props(path)

        def powered():
            if bool(props.Get(ADAPTER, "Powered")) == on:
                return True
            try:
                props.Set(ADAPTER, "Powered", dbus.Boolean(on))
            except dbus.exceptions.DBusException as e:
                # Busy while the controller initialises: try again
                if "Busy" not in e.get_dbus_name() and "InProgress" not in e.get_dbus_name():
                    raise
            return False

        wait(powered, timeout, "%s Powered=%s" % (path, on))

    def start_discovery(self, path, transport="le", timeout=15):
        adapter = dbus.Interface(self.bus.get_object("org.bluez", path), ADAPTER)
        adapter.SetDiscoveryFilter({"Transport": dbus.String(transport),
                                    "DuplicateData": dbus.Boolean(True)})
        adapter.StartDiscovery()
        props = self._props(path)
        wait(lambda: bool(props.Get(ADAPTER, "Discovering")), timeout,
             "%s Discovering=true" % path)

    def stop_discovery(self, path):
        dbus.Interface(self.bus.get_object("org.bluez", path), ADAPTER).StopDiscovery()

    def advertise(self, path, local_name=None, manufacturer_data=None, timeout=15):
        """Registers an advertisement on adapter `path` and waits for
        bluetoothd's reply (advertising is then enabled in the controller)."""
        wait(lambda: ADV_MANAGER in self.objects().get(dbus.ObjectPath(path), {}), timeout,
             "%s to offer %s" % (path, ADV_MANAGER))
        adv = Advertisement(self.bus, "/org/labgw/vmtest/adv%d" % len(self.adverts),
                            local_name, manufacturer_data)
        mgr = dbus.Interface(self.bus.get_object("org.bluez", path), ADV_MANAGER)
        reply = {}
        mgr.RegisterAdvertisement(adv.path, {}, reply_handler=lambda: reply.setdefault("ok", 1),
                                  error_handler=lambda e: reply.setdefault("error", e))
        wait(lambda: reply, timeout, "RegisterAdvertisement on %s" % path)
        if "error" in reply:
            raise AssertionError("RegisterAdvertisement on %s failed: %s"
                                 % (path, reply["error"]))
        self.adverts.append((path, adv))
        return adv

    def unadvertise_all(self):
        for path, adv in self.adverts:
            try:
                dbus.Interface(self.bus.get_object("org.bluez", path),
                               ADV_MANAGER).UnregisterAdvertisement(adv.path)
            except dbus.exceptions.DBusException:
                pass
            # free the path for the next advertisement
            adv.remove_from_connection()
        self.adverts = []

