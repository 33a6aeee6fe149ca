"""ModemManager mock template for python3-dbusmock.

Follows ModemManager's D-Bus API (org.freedesktop.ModemManager1; the
interfaces Modem, Modem.Modem3gpp, Modem.Signal, Modem.Messaging, Sim and
Sms, with the types of its introspection data) as far as labgw's cellular
radio uses it: an ObjectManager at /org/freedesktop/ModemManager1, modems at
.../Modem/N, their SIM at .../SIM/N, SMS at .../SMS/N.

Load it with `python3 -m dbusmock --system --template tests/integration/mm_template.py`.
The test controls it through org.freedesktop.ModemManager1.Mock on the main
object:

  AddModem(u index, a{sv} modem_props) -> o   a modem appears (InterfacesAdded)
  RemoveModem(u index)                        it is unplugged (InterfacesRemoved)
  SetModem(u index, s iface, a{sv} props)     properties change (PropertiesChanged)
  SetSignal(u index, s tech, a{sv} values)    Modem.Signal's Gsm/Umts/Lte/Nr5g change
  ReceiveSms(u index, s number, s text, s timestamp) -> o
                                              an SMS arrives (Messaging.Added)
  ReceiveSmsPart(u index, s number, s text, s timestamp) -> o
                                              the first part of one (State RECEIVING)
  CompleteSms(o path, s text)                 its last part came (State RECEIVED)
  FailNextSend(u index, s message)            the next Sms.Send fails with message
  Sent() -> a(ss)                             the (number, text) of every SMS sent
  Messages(u index) -> ao                     the modem's SMS list
"""

import dbus

from dbusmock import OBJECT_MANAGER_IFACE, mockobject

BUS_NAME = "org.freedesktop.ModemManager1"
MAIN_OBJ = "/org/freedesktop/ModemManager1"
MAIN_IFACE = "org.freedesktop.ModemManager1"
SYSTEM_BUS = True
IS_OBJECT_MANAGER = True

MOCK_IFACE = "org.freedesktop.ModemManager1.Mock"
MODEM = "org.freedesktop.ModemManager1.Modem"
MODEM_3GPP = "org.freedesktop.ModemManager1.Modem.Modem3gpp"
SIGNAL = "org.freedesktop.ModemManager1.Modem.Signal"
MESSAGING = "org.freedesktop.ModemManager1.Modem.Messaging"
SIM = "org.freedesktop.ModemManager1.Sim"
SMS = "org.freedesktop.ModemManager1.Sms"

# MMModemState
STATE_DISABLED = 3
STATE_ENABLING = 5
STATE_REGISTERED = 8
# MMSmsState
SMS_STATE_UNKNOWN = 0
SMS_STATE_STORED = 1
SMS_STATE_RECEIVING = 2
SMS_STATE_RECEIVED = 3
SMS_STATE_SENDING = 4
SMS_STATE_SENT = 5
# MMSmsPduType
PDU_DELIVER = 1
PDU_SUBMIT = 2
# MMModemAccessTechnology
AT_LTE = 1 << 14


def _main():
    return mockobject.objects[MAIN_OBJ]


def _modem_path(index):
    return "%s/Modem/%d" % (MAIN_OBJ, index)


def _modem(index):
    path = _modem_path(index)
    if path not in mockobject.objects:
        raise dbus.exceptions.DBusException("no modem %d" % index,
                                            name="org.freedesktop.ModemManager1.Error.Core.NotFound")
    return mockobject.objects[path]


def _sms_path():
    mm = _main()
    mm.sms_serial += 1
    return "%s/SMS/%d" % (MAIN_OBJ, mm.sms_serial)


def _update(obj, iface, props):
    """Set properties and emit PropertiesChanged (dbusmock's UpdateProperties
    cannot wrap dictionaries such as Modem.Signal's values)."""
    changed = {}
    for name, value in props.items():
        if name not in obj.props.get(iface, {}):
            raise dbus.exceptions.DBusException("property %s not found" % name,
                                                name=iface + ".NoSuchProperty")
        obj.props[iface][name] = value
        changed[name] = value
    obj.EmitSignal("org.freedesktop.DBus.Properties", "PropertiesChanged", "sa{sv}as",
                   [iface, dbus.Dictionary(changed, signature="sv"),
                    dbus.Array([], signature="s")])


def load(mock, parameters):
    mock.AddMethods(MAIN_IFACE, [
        ("ScanDevices", "", "", ""),
        ("SetLogging", "s", "", ""),
    ])
    mock.AddProperties(MAIN_IFACE, {"Version": dbus.String("1.20.4-labgw-mock")})
    mock.sms_serial = 0
    mock.sent = []
    mock.fail_send = {}


# ---- the modem's own methods ---------------------------------------------------

def modem_enable(modem, enable):
    state = STATE_REGISTERED if enable else STATE_DISABLED
    _update(modem, MODEM, {"State": dbus.Int32(state)})


def signal_setup(modem, rate):
    _update(modem, SIGNAL, {"Rate": dbus.UInt32(rate)})


def messaging_list(modem):
    return dbus.Array(modem.props[MESSAGING]["Messages"], signature="o")


def _set_messages(modem, paths):
    _update(modem, MESSAGING, {"Messages": dbus.Array(paths, signature="o")})


def messaging_delete(modem, path):
    path = str(path)
    msgs = [str(p) for p in modem.props[MESSAGING]["Messages"]]
    if path not in msgs or path not in mockobject.objects:
        raise dbus.exceptions.DBusException("no SMS " + path,
                                            name="org.freedesktop.ModemManager1.Error.Core.NotFound")
    modem.RemoveObject(path)
    msgs.remove(path)
    _set_messages(modem, msgs)
    modem.EmitSignal(MESSAGING, "Deleted", "o", [dbus.ObjectPath(path)])


def _add_sms(modem, props):
    path = _sms_path()
    base = {
        "State": dbus.UInt32(SMS_STATE_UNKNOWN),
        "PduType": dbus.UInt32(PDU_SUBMIT),
        "Number": dbus.String(""),
        "Text": dbus.String(""),
        "Data": dbus.Array([], signature="y"),
        "SMSC": dbus.String(""),
        "Class": dbus.Int32(-1),
        "TeleserviceId": dbus.UInt32(0),
        "ServiceCategory": dbus.UInt32(0),
        "DeliveryReportRequest": dbus.Boolean(False),
        "MessageReference": dbus.UInt32(0),
        "Timestamp": dbus.String(""),
        "DischargeTimestamp": dbus.String(""),
        "DeliveryState": dbus.UInt32(0x100),
        "Storage": dbus.UInt32(0),
    }
    base.update(props)
    modem.AddObject(path, SMS, base, [
        ("Send", "", "", sms_send),
        ("Store", "u", "", sms_store),
    ])
    sms = mockobject.objects[path]
    sms.modem_path = modem.path
    msgs = [str(p) for p in modem.props[MESSAGING]["Messages"]] + [path]
    _set_messages(modem, msgs)
    return path


def messaging_create(modem, props):
    number = props.get("number")
    text = props.get("text")
    if not number or (text is None and "data" not in props):
        raise dbus.exceptions.DBusException(
            "Cannot create SMS: mandatory parameter 'number' or 'text' missing",
            name="org.freedesktop.ModemManager1.Error.Core.InvalidArgs")
    path = _add_sms(modem, {"Number": dbus.String(number), "Text": dbus.String(text or ""),
                            "PduType": dbus.UInt32(PDU_SUBMIT)})
    modem.EmitSignal(MESSAGING, "Added", "ob", [dbus.ObjectPath(path), False])
    return dbus.ObjectPath(path)


def sms_send(sms):
    mm = _main()
    modem = mockobject.objects[sms.modem_path]
    reason = mm.fail_send.pop(modem.path, None)
    if reason is not None:
        raise dbus.exceptions.DBusException(reason,
                                            name="org.freedesktop.ModemManager1.Error.Core.Failed")
    _update(sms, SMS, {"State": dbus.UInt32(SMS_STATE_SENDING)})
    mm.sent.append((str(sms.props[SMS]["Number"]), str(sms.props[SMS]["Text"])))
    _update(sms, SMS, {"State": dbus.UInt32(SMS_STATE_SENT)})


def sms_store(sms, storage):
    _update(sms, SMS, {"State": dbus.UInt32(SMS_STATE_STORED),
                               "Storage": dbus.UInt32(storage)})


# ---- test control --------------------------------------------------------------

@dbus.service.method(MOCK_IFACE, in_signature="ua{sv}", out_signature="o")
def AddModem(self, index, modem_props):
    path = _modem_path(index)
    sim_path = "%s/SIM/%d" % (MAIN_OBJ, index)
    props = {
        "Sim": dbus.ObjectPath(sim_path),
        "SimSlots": dbus.Array([dbus.ObjectPath(sim_path)], signature="o"),
        "PrimarySimSlot": dbus.UInt32(1),
        "Bearers": dbus.Array([], signature="o"),
        "SupportedCapabilities": dbus.Array([dbus.UInt32(8)], signature="u"),
        "CurrentCapabilities": dbus.UInt32(8),
        "MaxBearers": dbus.UInt32(1),
        "MaxActiveBearers": dbus.UInt32(1),
        "Manufacturer": dbus.String("Quectel"),
        "Model": dbus.String("EM12-G"),
        "Revision": dbus.String("EM12GPAR01A12M4G"),
        "CarrierConfiguration": dbus.String("default"),
        "CarrierConfigurationRevision": dbus.String(""),
        "HardwareRevision": dbus.String("10000"),
        "DeviceIdentifier": dbus.String("c0ffee%034d" % index),
        "Device": dbus.String("/sys/devices/pci0000:00/0000:00:14.0/usb2/2-%d" % (index + 1)),
        "Physdev": dbus.String("/sys/devices/pci0000:00/0000:00:14.0/usb2/2-%d" % (index + 1)),
        "Drivers": dbus.Array(["qmi_wwan", "option"], signature="s"),
        "Plugin": dbus.String("quectel"),
        "PrimaryPort": dbus.String("cdc-wdm%d" % index),
        "Ports": dbus.Array([], signature="(su)"),
        "EquipmentIdentifier": dbus.String("86%013d" % (4242 + index)),
        "UnlockRequired": dbus.UInt32(1),
        "UnlockRetries": dbus.Dictionary({}, signature="uu"),
        "State": dbus.Int32(STATE_REGISTERED),
        "StateFailedReason": dbus.UInt32(0),
        "AccessTechnologies": dbus.UInt32(AT_LTE),
        "SignalQuality": dbus.Struct((dbus.UInt32(72), dbus.Boolean(True)), signature="ub"),
        "OwnNumbers": dbus.Array(["+4915199990000"], signature="s"),
        "PowerState": dbus.UInt32(3),
        "SupportedModes": dbus.Array([], signature="(uu)"),
        "CurrentModes": dbus.Struct((dbus.UInt32(0), dbus.UInt32(0)), signature="uu"),
        "SupportedBands": dbus.Array([], signature="u"),
        "CurrentBands": dbus.Array([], signature="u"),
        "SupportedIpFamilies": dbus.UInt32(7),
    }
    props.update(modem_props)
    self.AddObject(path, MODEM, props, [
        ("Enable", "b", "", modem_enable),
        ("Reset", "", "", ""),
    ])
    modem = mockobject.objects[path]
    modem.AddProperties(MODEM_3GPP, {
        "Imei": dbus.String("86%013d" % (4242 + index)),
        "RegistrationState": dbus.UInt32(1),
        "OperatorCode": dbus.String("26201"),
        "OperatorName": dbus.String("Telekom.de"),
        "EnabledFacilityLocks": dbus.UInt32(0),
        "SubscriptionState": dbus.UInt32(0),
        "EpsUeModeOperation": dbus.UInt32(0),
        "Pco": dbus.Array([], signature="(ubay)"),
        "InitialEpsBearer": dbus.ObjectPath("/"),
        "InitialEpsBearerSettings": dbus.Dictionary({}, signature="sv"),
    })
    modem.AddMethods(MODEM_3GPP, [("Register", "s", "", ""), ("Scan", "", "aa{sv}", "ret = []")])
    modem.AddProperties(SIGNAL, {
        "Rate": dbus.UInt32(0),
        "RssiThreshold": dbus.UInt32(0),
        "ErrorRateThreshold": dbus.Boolean(False),
        "Cdma": dbus.Dictionary({}, signature="sv"),
        "Evdo": dbus.Dictionary({}, signature="sv"),
        "Gsm": dbus.Dictionary({}, signature="sv"),
        "Umts": dbus.Dictionary({}, signature="sv"),
        "Lte": dbus.Dictionary({}, signature="sv"),
        "Nr5g": dbus.Dictionary({}, signature="sv"),
    })
    modem.AddMethods(SIGNAL, [("Setup", "u", "", signal_setup),
                              ("SetupThresholds", "a{sv}", "", "")])
    modem.AddProperties(MESSAGING, {
        "Messages": dbus.Array([], signature="o"),
        "SupportedStorages": dbus.Array([dbus.UInt32(2)], signature="u"),
        "DefaultStorage": dbus.UInt32(2),
    })
    modem.AddMethods(MESSAGING, [
        ("List", "", "ao", messaging_list),
        ("Delete", "o", "", messaging_delete),
        ("Create", "a{sv}", "o", messaging_create),
    ])
    if sim_path not in mockobject.objects:
        self.AddObject(sim_path, SIM, {
            "Active": dbus.Boolean(True),
            "SimIdentifier": dbus.String("8949%015d" % (1234 + index)),
            "Imsi": dbus.String("26201%010d" % (5678 + index)),
            "Eid": dbus.String(""),
            "OperatorIdentifier": dbus.String("26201"),
            "OperatorName": dbus.String("Telekom.de"),
            "EmergencyNumbers": dbus.Array(["112"], signature="s"),
        }, [])
    self.EmitSignal(OBJECT_MANAGER_IFACE, "InterfacesAdded", "oa{sa{sv}}",
                    [dbus.ObjectPath(path), modem.props])
    return dbus.ObjectPath(path)


@dbus.service.method(MOCK_IFACE, in_signature="u", out_signature="")
def RemoveModem(self, index):
    modem = _modem(index)
    ifaces = list(modem.props.keys())
    for p in [str(x) for x in modem.props[MESSAGING]["Messages"]]:
        if p in mockobject.objects:
            self.RemoveObject(p)
    self.RemoveObject(modem.path)
    self.EmitSignal(OBJECT_MANAGER_IFACE, "InterfacesRemoved", "oas",
                    [dbus.ObjectPath(modem.path), dbus.Array(ifaces, signature="s")])


@dbus.service.method(MOCK_IFACE, in_signature="usa{sv}", out_signature="")
def SetModem(self, index, iface, props):
    _update(_modem(index), iface, props)


@dbus.service.method(MOCK_IFACE, in_signature="usa{sv}", out_signature="")
def SetSignal(self, index, tech, values):
    _update(_modem(index), SIGNAL, {
        str(tech): dbus.Dictionary({str(k): dbus.Double(v) for k, v in values.items()},
                                   signature="sv")})


def _receive(index, number, text, timestamp, state):
    modem = _modem(index)
    path = _add_sms(modem, {
        "State": dbus.UInt32(state),
        "PduType": dbus.UInt32(PDU_DELIVER),
        "Number": dbus.String(number),
        "Text": dbus.String(text),
        "Data": dbus.Array(text.encode("utf-8"), signature="y"),
        "SMSC": dbus.String("+491710760000"),
        "Timestamp": dbus.String(timestamp),
        "Storage": dbus.UInt32(2),
    })
    modem.EmitSignal(MESSAGING, "Added", "ob", [dbus.ObjectPath(path), True])
    return dbus.ObjectPath(path)


@dbus.service.method(MOCK_IFACE, in_signature="usss", out_signature="o")
def ReceiveSms(self, index, number, text, timestamp):
    return _receive(index, number, text, timestamp, SMS_STATE_RECEIVED)


@dbus.service.method(MOCK_IFACE, in_signature="usss", out_signature="o")
def ReceiveSmsPart(self, index, number, text, timestamp):
    """The first part of a multi-part SMS: announced while still RECEIVING."""
    return _receive(index, number, text, timestamp, SMS_STATE_RECEIVING)


@dbus.service.method(MOCK_IFACE, in_signature="os", out_signature="")
def CompleteSms(self, path, text):
    """The last part arrived: the whole text, and the SMS RECEIVED."""
    _update(mockobject.objects[str(path)], SMS, {"Text": dbus.String(text),
                                                 "State": dbus.UInt32(SMS_STATE_RECEIVED)})


@dbus.service.method(MOCK_IFACE, in_signature="us", out_signature="")
def FailNextSend(self, index, message):
    self.fail_send[_modem(index).path] = str(message)


@dbus.service.method(MOCK_IFACE, in_signature="", out_signature="a(ss)")
def Sent(self):
    return dbus.Array(self.sent, signature="(ss)")


@dbus.service.method(MOCK_IFACE, in_signature="u", out_signature="ao")
def Messages(self, index):
    return messaging_list(_modem(index))
