"""A Semtech packet forwarder, a fake network server and LoRaWAN 1.0.x frames,
for the tests of the lorawan radio module.

- Forwarder: a gateway speaking GWMP v2 over UDP (PROTOCOL.TXT of the Semtech
  packet forwarder): PUSH_DATA with rxpk/stat, PULL_DATA keepalives, TX_ACK
  with a chosen error; it records every PUSH_ACK, PULL_ACK and PULL_RESP.
- NetworkServer: the server side of the same protocol, to stand upstream of
  labgwd: acknowledges what it gets, records it, sends PULL_RESP.
- PHYPayloads with real MICs and encryption (AES-128-CMAC and AES-128 from
  Debian's python3-cryptography): data up/down, join-request, and a parser
  that checks a downlink under the session keys.
- lora_airtime_ms(): time on air per Semtech AN1200.13, to check the
  daemon's airtime independently.

Written from the protocol and the LoRaWAN 1.0.x specification; nothing here
reuses the daemon's code.
"""

import base64
import json
import math
import os
import socket
import struct
import threading
import time

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# ---- GWMP ----------------------------------------------------------------------

VERSION = 2
PUSH_DATA, PUSH_ACK, PULL_DATA, PULL_RESP, PULL_ACK, TX_ACK = 0, 1, 2, 3, 4, 5
IDENT_NAMES = {PUSH_DATA: "PUSH_DATA", PUSH_ACK: "PUSH_ACK", PULL_DATA: "PULL_DATA",
               PULL_RESP: "PULL_RESP", PULL_ACK: "PULL_ACK", TX_ACK: "TX_ACK"}
TX_ACK_ERRORS = ("NONE", "TOO_LATE", "TOO_EARLY", "COLLISION_PACKET", "COLLISION_BEACON",
                 "TX_FREQ", "TX_POWER", "GPS_UNLOCKED")

DEFAULT_EUI = bytes.fromhex("aa555a0000000101")


def gwmp(ident, token, eui=None, body=None, version=VERSION):
    """One datagram: version, token, identifier, [gateway EUI], [JSON]."""
    out = struct.pack(">BHB", version, token, ident)
    if eui is not None:
        out += eui
    if body is not None:
        out += body if isinstance(body, bytes) else json.dumps(body).encode()
    return out


def parse_gwmp(data):
    """(ident, token, eui or None, JSON object or None) of a datagram, or None
    when it is not GWMP v1 or v2. Upstream datagrams (PUSH_DATA, PULL_DATA,
    TX_ACK) carry the gateway EUI after the header."""
    if len(data) < 4 or data[0] not in (1, 2):
        return None
    token = struct.unpack(">H", data[1:3])[0]
    ident = data[3]
    eui = None
    rest = data[4:]
    if ident in (PUSH_DATA, PULL_DATA, TX_ACK):
        if len(rest) < 8:
            return None
        eui, rest = rest[:8], rest[8:]
    body = None
    if rest:
        try:
            body = json.loads(rest)
        except ValueError:
            body = {"_unparsed": rest.decode("latin-1")}
    return ident, token, eui, body


class Datagram:
    __slots__ = ("ident", "token", "eui", "body", "raw", "at", "addr", "version")

    def __init__(self, raw, addr):
        self.raw = raw
        self.addr = addr
        self.at = time.monotonic()
        self.version = raw[0] if raw else None
        p = parse_gwmp(raw)
        if p is None:
            self.ident, self.token, self.eui, self.body = None, None, None, None
        else:
            self.ident, self.token, self.eui, self.body = p

    def __repr__(self):
        return "<%s token=%s eui=%s %s>" % (
            IDENT_NAMES.get(self.ident, "?%r" % self.ident), self.token,
            self.eui.hex() if self.eui else None,
            json.dumps(self.body)[:200] if self.body is not None else "")


class _UdpPeer:
    """A UDP socket with a receiving thread that keeps every datagram."""

    def __init__(self, bind=("127.0.0.1", 0)):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(bind)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.got = []
        self.cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            try:
                raw, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                if self._stop:
                    return
                time.sleep(0.01)  # e.g. ECONNREFUSED of an earlier send
                continue
            d = Datagram(raw, addr)
            self._on_datagram(d)
            with self.cond:
                self.got.append(d)
                self.cond.notify_all()

    def _on_datagram(self, d):
        pass

    def mark(self):
        with self.cond:
            return len(self.got)

    def wait(self, pred, timeout=5.0, start=0, what="datagram"):
        """The first datagram from index `start` for which pred(d)."""
        deadline = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.got):
                    d = self.got[i]
                    i += 1
                    if pred(d):
                        return d
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %s within %.1f s; got %r"
                                         % (what, timeout, self.got[start:][-10:]))
                self.cond.wait(min(left, 0.1))

    def none(self, pred, within, start=0):
        """Assert that no datagram matching pred arrives within `within` s."""
        time.sleep(within)
        with self.cond:
            bad = [d for d in self.got[start:] if pred(d)]
        assert not bad, "unexpected datagrams: %r" % bad

    def matching(self, pred, start=0):
        with self.cond:
            return [d for d in self.got[start:] if pred(d)]

    def close(self):
        self._stop = True
        self._thread.join(2)
        self.sock.close()


class Forwarder(_UdpPeer):
    """A packet forwarder (gateway) sending to labgwd's GWMP port.

    tx_ack: what to answer a PULL_RESP with automatically: None (nothing),
    or an error name ("NONE", "TOO_LATE", ...); may be changed at any time.
    version: 2, or 1 for an old forwarder (no TX_ACK at all).
    """

    def __init__(self, port, eui=DEFAULT_EUI, host="127.0.0.1", tx_ack=None, version=VERSION):
        self.eui = eui
        self.version = version
        self.dest = (host, port)
        self.tx_ack = tx_ack
        self.tx_acks_sent = []
        self._token = int.from_bytes(os.urandom(2), "big")
        self._lock = threading.Lock()
        self._keepalive = None
        super().__init__()

    def token(self):
        with self._lock:
            self._token = (self._token + 1) & 0xFFFF
            return self._token

    def send_raw(self, data):
        self.sock.sendto(data, self.dest)

    def _on_datagram(self, d):
        if d.ident == PULL_RESP and self.tx_ack is not None and self.version >= 2:
            self.send_tx_ack(d.token, self.tx_ack)

    def send_tx_ack(self, token, error="NONE"):
        """TX_ACK for the PULL_RESP with `token`; error None sends one
        without JSON (which means no error)."""
        body = None if error is None else {"txpk_ack": {"error": error}}
        self.tx_acks_sent.append((token, error))
        self.send_raw(gwmp(TX_ACK, token, self.eui, body, self.version))

    def push(self, rxpk=(), stat=None, token=None):
        """PUSH_DATA; returns its token."""
        body = {}
        if rxpk:
            body["rxpk"] = list(rxpk)
        if stat is not None:
            body["stat"] = stat
        t = self.token() if token is None else token
        self.send_raw(gwmp(PUSH_DATA, t, self.eui, body, self.version))
        return t

    def pull(self, token=None):
        """PULL_DATA; returns its token."""
        t = self.token() if token is None else token
        self.send_raw(gwmp(PULL_DATA, t, self.eui, version=self.version))
        return t

    def wait_ack(self, ident, token, timeout=5.0, start=0):
        return self.wait(lambda d: d.ident == ident and d.token == token, timeout, start,
                         "%s with token %d" % (IDENT_NAMES[ident], token))

    def push_acked(self, rxpk=(), stat=None, timeout=5.0):
        """PUSH_DATA, then wait for its PUSH_ACK; returns the token."""
        m = self.mark()
        t = self.push(rxpk, stat)
        self.wait_ack(PUSH_ACK, t, timeout, m)
        return t

    def pull_acked(self, timeout=5.0):
        m = self.mark()
        t = self.pull()
        self.wait_ack(PULL_ACK, t, timeout, m)
        return t

    def wait_pull_resp(self, timeout=5.0, start=0):
        return self.wait(lambda d: d.ident == PULL_RESP, timeout, start, "PULL_RESP")

    def pull_resps(self, start=0):
        return self.matching(lambda d: d.ident == PULL_RESP, start)

    def keepalive(self, interval):
        """PULL_DATA every `interval` s in a thread until stop_keepalive()."""
        self.stop_keepalive()
        ev = threading.Event()

        def run():
            while not ev.is_set():
                try:
                    self.pull()
                except OSError:
                    pass
                ev.wait(interval)

        th = threading.Thread(target=run, daemon=True)
        self._keepalive = (ev, th)
        th.start()

    def stop_keepalive(self):
        if self._keepalive:
            ev, th = self._keepalive
            ev.set()
            th.join(2)
            self._keepalive = None

    def close(self):
        self.stop_keepalive()
        super().close()


class NetworkServer(_UdpPeer):
    """The server side of GWMP, upstream of labgwd: answers PUSH_DATA with
    PUSH_ACK and PULL_DATA with PULL_ACK (unless `ack` is False) and remembers
    where the last PULL_DATA came from, for send_pull_resp()."""

    def __init__(self, ack=True):
        self.ack = ack
        self.pull_addr = None
        super().__init__()

    def _on_datagram(self, d):
        if d.ident == PULL_DATA:
            self.pull_addr = d.addr
        if not self.ack:
            return
        if d.ident == PUSH_DATA:
            self.sock.sendto(gwmp(PUSH_ACK, d.token), d.addr)
        elif d.ident == PULL_DATA:
            self.sock.sendto(gwmp(PULL_ACK, d.token), d.addr)

    def send_pull_resp(self, txpk, token=None):
        assert self.pull_addr, "no PULL_DATA reached the network server yet"
        t = int.from_bytes(os.urandom(2), "big") if token is None else token
        self.sock.sendto(gwmp(PULL_RESP, t, None, {"txpk": txpk}), self.pull_addr)
        return t


# ---- rxpk / stat ------------------------------------------------------------------


def rxpk(phy, tmst, freq=868.1, datr="SF7BW125", codr="4/5", rssi=-57, lsnr=7.5, chan=0,
         rfch=0, stat=1, **extra):
    """One received packet as the forwarder reports it."""
    p = {"time": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()), "tmst": tmst,
         "chan": chan, "rfch": rfch, "freq": freq, "stat": stat, "modu": "LORA", "datr": datr,
         "codr": codr, "rssi": rssi, "lsnr": lsnr, "size": len(phy),
         "data": base64.b64encode(phy).decode()}
    p.update(extra)
    return p


def stat(rxnb=3, rxok=2, rxfw=2, ackr=100.0, dwnb=0, txnb=0, **extra):
    s = {"time": time.strftime("%Y-%m-%d %H:%M:%S GMT", time.gmtime()), "lati": 52.52,
         "long": 13.405, "alti": 40, "rxnb": rxnb, "rxok": rxok, "rxfw": rxfw, "ackr": ackr,
         "dwnb": dwnb, "txnb": txnb}
    s.update(extra)
    return s


def parse_datr(datr):
    """'SF7BW125' -> (7, 125000)"""
    assert datr.startswith("SF") and "BW" in datr, datr
    sf, bw = datr[2:].split("BW")
    return int(sf), int(bw) * 1000


# ---- LoRaWAN 1.0.x -------------------------------------------------------------------

MTYPES = {0: "join_request", 1: "join_accept", 2: "unconfirmed_up", 3: "unconfirmed_down",
          4: "confirmed_up", 5: "confirmed_down", 6: "rfu", 7: "proprietary"}
UP, DOWN = 0, 1


def aes_block(key, block):
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def aes_cmac(key, msg):
    c = cmac.CMAC(algorithms.AES(key))
    c.update(msg)
    return c.finalize()


def data_mic(nwkskey, direction, devaddr, fcnt, msg):
    """MIC of MHDR|FHDR|FPort|FRMPayload: CMAC over B0 | msg, first 4 bytes."""
    b0 = struct.pack("<B4xBIIxB", 0x49, direction, devaddr, fcnt & 0xFFFFFFFF, len(msg))
    return aes_cmac(nwkskey, b0 + msg)[:4]


def frm_crypt(key, direction, devaddr, fcnt, data):
    """FRMPayload encryption (and decryption: the same XOR with the A-block
    keystream)."""
    out = bytearray()
    for i in range(math.ceil(len(data) / 16)):
        a = struct.pack("<B4xBIIxB", 0x01, direction, devaddr, fcnt & 0xFFFFFFFF, i + 1)
        s = aes_block(key, a)
        chunk = data[16 * i:16 * i + 16]
        out += bytes(x ^ y for x, y in zip(chunk, s))
    return bytes(out)


def devaddr_int(devaddr):
    """'26011bda' -> 0x26011bda"""
    return int(devaddr, 16)


def data_frame(mtype, devaddr, fcnt, fport, payload, nwkskey, appskey, fctrl=0, fopts=b"",
               mic=None, direction=None):
    """A data PHYPayload. devaddr as a hex string or an int; payload the
    plaintext FRMPayload (fport None: no FPort, no payload); mic overrides
    the computed MIC (e.g. a wrong one)."""
    if isinstance(devaddr, str):
        devaddr = devaddr_int(devaddr)
    if direction is None:
        direction = UP if mtype in (2, 4) else DOWN
    assert len(fopts) <= 15
    fhdr = struct.pack("<IBH", devaddr, (fctrl & 0xF0) | len(fopts), fcnt & 0xFFFF) + fopts
    msg = bytes([mtype << 5]) + fhdr
    if fport is not None:
        key = nwkskey if fport == 0 else appskey
        msg += bytes([fport]) + frm_crypt(key, direction, devaddr, fcnt, payload)
    if mic is None:
        mic = data_mic(nwkskey, direction, devaddr, fcnt, msg)
    return msg + mic


def uplink(devaddr, fcnt, fport, payload, nwkskey, appskey, confirmed=False, adr=False,
           ack=False, adr_ack_req=False, fopts=b"", mic=None):
    fctrl = (0x80 if adr else 0) | (0x40 if adr_ack_req else 0) | (0x20 if ack else 0)
    return data_frame(4 if confirmed else 2, devaddr, fcnt, fport, payload, nwkskey, appskey,
                      fctrl, fopts, mic)


def join_request(join_eui, dev_eui, dev_nonce, appkey):
    """join_eui/dev_eui as 16 hex digits (big-endian, as printed); on air
    they travel little-endian."""
    msg = bytes([0x00]) + bytes.fromhex(join_eui)[::-1] + bytes.fromhex(dev_eui)[::-1] + \
        struct.pack("<H", dev_nonce)
    return msg + aes_cmac(appkey, msg)[:4]


def parse_data(phy, nwkskey=None, appskey=None, fcnt_hi=0):
    """The fields of a data PHYPayload; with keys, mic_ok and the decrypted
    payload (the 32-bit counter is fcnt_hi << 16 | the 16 bits on air)."""
    assert len(phy) >= 12, phy.hex()
    mhdr = phy[0]
    mtype = mhdr >> 5
    devaddr, fctrl, fcnt16 = struct.unpack("<IBH", phy[1:8])
    nopts = fctrl & 0x0F
    fopts = phy[8:8 + nopts]
    rest = phy[8 + nopts:-4]
    fport = rest[0] if rest else None
    frm = rest[1:] if rest else b""
    direction = UP if mtype in (2, 4) else DOWN
    fcnt = (fcnt_hi << 16) | fcnt16
    out = {"mtype": MTYPES[mtype], "major": mhdr & 3, "devaddr": "%08x" % devaddr,
           "fctrl": fctrl, "adr": bool(fctrl & 0x80), "ack": bool(fctrl & 0x20),
           "fpending": bool(fctrl & 0x10) if direction == DOWN else None,
           "fopts": fopts, "fcnt": fcnt16, "fport": fport, "frm_encrypted": frm,
           "mic": phy[-4:]}
    if nwkskey is not None:
        out["mic_ok"] = data_mic(nwkskey, direction, devaddr, fcnt, phy[:-4]) == phy[-4:]
        if fport is not None:
            key = nwkskey if fport == 0 else appskey
            out["frm_payload"] = frm_crypt(key, direction, devaddr, fcnt, frm)
    return out


# ---- airtime -----------------------------------------------------------------------


def lora_airtime_ms(sf, bw_hz, length, cr=1, preamble=8, crc=False, implicit=False):
    """Time on air in ms (float) of `length` bytes; cr 1..4 for 4/5..4/8.
    Low data rate optimisation when a symbol lasts 16 ms or more."""
    tsym = (2 ** sf) / bw_hz * 1000.0
    de = 1 if tsym >= 16.0 else 0
    num = 8 * length - 4 * sf + 28 + (16 if crc else 0) - (20 if implicit else 0)
    n = 8 + max(math.ceil(num / (4 * (sf - 2 * de))) * (cr + 4), 0)
    return (preamble + 4.25) * tsym + n * tsym


def b64(data):
    return base64.b64encode(data).decode()


def unb64(s):
    return base64.b64decode(s + "=" * (-len(s) % 4))
