#!/usr/bin/env python3
"""A Gx and Gy client built with python-diameter (PyPI), a Diameter library nobody in this
project wrote, used as an independent peer against our servers.

It sends messages the way that library builds them, which is also how many field peers
bend the flag rules: Product-Name with the M bit in CER, Origin-Host and Origin-Realm
without it in CCR, RAT-Type with it. Each scenario prints what it saw and exits 0 only when
every check held.

The `rx-pcrf` scenario plays a PCEF (Gx) and an AF (Rx, a P-CSCF) on two connections
against the home PCRF: the PCEF opens an IP-CAN session, the AF's AAR (built with the
library's AaRequest and MediaComponentDescription) gets its media installed on the PCEF by a
Gx RAR, STR removes it again, a second AF session subscribed to loss of bearer hears of the
CCR-T with an Rx RAR, and an AAR for an address without IP-CAN session gets 5065.

`mbit` and `reconnect` run against any server that answers CCRs with 2001 (the echo
server); `gx-pcrf` runs a Gx session against the home PCRF with its demo subscribers and
checks what the CCAs carry (also through a proxy-mode DRA in front of it). `gx-redirect`
runs against a redirect-mode DRA: the CCR-I gets 3006 with a Redirect-Host URI, the client
follows it to the PCRF (at the URI's port on --host: the PCRF's name does not resolve on a
test machine), and sends its CCR-T to the PCRF and to the DRA (document 002).

The `gy` scenario is a credit-control session against an OCS: CCR-I asking for units of
rating group 1, CCR-U reporting Used-Service-Unit, CCR-T; it checks each CCA's content as
the library decodes it (Result-Code, per-MSCC Result-Code and Granted-Service-Unit,
CC-Request-Type/Number, Auth-Application-Id 4).

    python_client.py --port P [--host 127.0.0.1] --scenario mbit|reconnect|gx-pcrf|gx-redirect|rx-pcrf|gy [--imsi IMSI]
"""
import argparse
import socket
import struct
import sys
import time

from diameter.message import Message
from diameter.message.avp import Avp
from diameter.message.commands import (
    AaRequest,
    CapabilitiesExchangeRequest,
    CreditControlRequest,
    DeviceWatchdogAnswer,
    SessionTerminationRequest,
)
from diameter.message.avp.grouped import (
    MediaComponentDescription,
    MediaSubComponent,
    RequestedServiceUnit,
    SubscriptionId,
    SupportedFeatures,
    UsedServiceUnit,
)
from diameter.message.constants import (
    APP_3GPP_GX,
    APP_3GPP_RX,
    APP_DIAMETER_CREDIT_CONTROL_APPLICATION,
    AVP_PRODUCT_NAME,
    AVP_TGPP_RAT_TYPE,
    E_CC_REQUEST_TYPE_INITIAL_REQUEST,
    E_CC_REQUEST_TYPE_TERMINATION_REQUEST,
    E_CC_REQUEST_TYPE_UPDATE_REQUEST,
    E_SUBSCRIPTION_ID_TYPE_END_USER_IMSI,
    E_TERMINATION_CAUSE_DIAMETER_LOGOUT,
    VENDOR_TGPP,
)

ORIGIN_HOST = b"pcef.python.test"
ORIGIN_REALM = b"python.test"
FAILURES = []


def check(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what + (f": {detail}" if detail else ""))
    if not ok:
        FAILURES.append(what)


class Peer:
    """One TCP connection speaking whole Diameter messages, answering DWRs."""

    def __init__(self, host, port, origin_host=ORIGIN_HOST):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.buf = b""
        self.origin_host = origin_host

    def send(self, msg):
        self.sock.sendall(msg if isinstance(msg, bytes) else msg.as_bytes())

    def recv(self):
        while True:
            while len(self.buf) < 4 or len(self.buf) < self._length():
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed by the server")
                self.buf += chunk
            n = self._length()
            data, self.buf = self.buf[:n], self.buf[n:]
            msg = Message.from_bytes(data)
            msg.wire = data
            if msg.header.is_request and msg.header.command_code == 280:
                dwa = DeviceWatchdogAnswer()
                dwa.header.hop_by_hop_identifier = msg.header.hop_by_hop_identifier
                dwa.header.end_to_end_identifier = msg.header.end_to_end_identifier
                dwa.result_code = 2001
                dwa.origin_host = self.origin_host
                dwa.origin_realm = ORIGIN_REALM
                self.send(dwa)
                continue
            return msg

    def _length(self):
        return struct.unpack("!I", b"\x00" + self.buf[1:4])[0]

    def vanish(self):
        """Closes with a TCP reset and no DPR, as a crashed PCEF leaves its connection."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def cer(origin_state_id, app=APP_3GPP_GX, origin_host=ORIGIN_HOST):
    m = CapabilitiesExchangeRequest()
    m.header.hop_by_hop_identifier = 1
    m.header.end_to_end_identifier = 1
    m.origin_host = origin_host
    m.origin_realm = ORIGIN_REALM
    m.host_ip_address = "127.0.0.1"
    m.vendor_id = VENDOR_TGPP
    m.product_name = "python-diameter"
    m.origin_state_id = origin_state_id
    m.auth_application_id = app
    m.supported_vendor_id = VENDOR_TGPP
    # The library clears the M bit of Product-Name, as RFC 6733 §5.3.7 wants; some field
    # peers set it. Set it on the wire copy.
    return with_mandatory(m, AVP_PRODUCT_NAME)


def with_mandatory(msg, code, vendor=0):
    """The message's bytes with the M bit set on AVP `code`."""
    plain = Message.from_bytes(msg.as_bytes(), plain_msg=True)
    for a in plain.avps:
        if a.code == code and a.vendor_id == vendor:
            a.is_mandatory = True
    return plain.as_bytes()


def wire_avps(data):
    """The top-level AVPs as they are on the wire (the library regenerates flags and
    defaults when it decodes into a command class)."""
    return Message.from_bytes(data, plain_msg=True).avps


def ccr(session, number, e2e, retransmit=False, imsi="001010000000001"):
    m = CreditControlRequest()
    m.header.application_id = APP_3GPP_GX
    m.header.hop_by_hop_identifier = 0x1000 + e2e
    m.header.end_to_end_identifier = e2e
    m.header.is_retransmit = retransmit
    m.session_id = session
    m.origin_host = ORIGIN_HOST
    m.origin_realm = ORIGIN_REALM
    m.destination_realm = b"home.test"
    m.auth_application_id = APP_3GPP_GX
    m.cc_request_type = (
        E_CC_REQUEST_TYPE_INITIAL_REQUEST if number == 0 else E_CC_REQUEST_TYPE_UPDATE_REQUEST
    )
    m.cc_request_number = number
    m.subscription_id = [
        SubscriptionId(
            subscription_id_type=E_SUBSCRIPTION_ID_TYPE_END_USER_IMSI,
            subscription_id_data=imsi,
        )
    ]
    m.rat_type = 1004  # EUTRAN
    return m


def flags_of(data, code, vendor=0):
    data = data if isinstance(data, bytes) else data.as_bytes()
    for a in wire_avps(data):
        if a.code == code and a.vendor_id == vendor:
            return a.flags
    return 0


def has(data, code):
    return any(a.code == code for a in wire_avps(data))


def open_peer(args, osi, app=APP_3GPP_GX, origin_host=ORIGIN_HOST):
    p = Peer(args.host, args.port, origin_host)
    req = cer(osi, app, origin_host)
    check("CER carries Product-Name with the M bit", bool(flags_of(req, AVP_PRODUCT_NAME) & 0x40))
    p.send(req)
    cea = p.recv()
    check("CEA 2001", cea.result_code == 2001, f"Result-Code {cea.result_code}")
    p.cea = cea
    return p


def advertised_apps(cea):
    """Auth-Application-Id values in the CEA's Vendor-Specific-Application-Ids of 3GPP."""
    apps = []
    for v in ietf(wire_avps(cea.wire), 260):
        if [a.value for a in ietf(v.value, 266)] == [VENDOR_TGPP]:
            apps += [a.value for a in ietf(v.value, 258)]
    return apps


def ask(p, req, what, app=APP_3GPP_GX):
    p.send(req)
    ans = p.recv()
    rc = ans.result_code
    check(f"{what}: answer 2001", rc == 2001, f"Result-Code {rc}")
    check(f"{what}: identifiers match",
          ans.header.end_to_end_identifier == req.header.end_to_end_identifier
          and ans.header.hop_by_hop_identifier == req.header.hop_by_hop_identifier)
    # RFC 4006 §3.2 CCA grammar: Auth-Application-Id, CC-Request-Type, CC-Request-Number.
    for code, name in ((258, "Auth-Application-Id"), (416, "CC-Request-Type"),
                       (415, "CC-Request-Number")):
        check(f"{what}: {name} present", has(ans.wire, code))
    check(f"{what}: Auth-Application-Id {app}", ans.auth_application_id == app,
          f"{ans.auth_application_id}")
    check(f"{what}: CC-Request-Type", ans.cc_request_type == req.cc_request_type,
          f"{ans.cc_request_type}")
    check(f"{what}: CC-Request-Number", ans.cc_request_number == req.cc_request_number,
          f"{ans.cc_request_number}")
    check(f"{what}: Session-Id", ans.session_id == req.session_id)
    return ans


def scenario_mbit(args):
    p = open_peer(args, osi=int(time.time()))
    req = ccr("pcef.python.test;1;1", 0, 0x2001)
    check("CCR: Origin-Host without the M bit", not flags_of(req, 264) & 0x40)
    check("CCR: Origin-Realm without the M bit", not flags_of(req, 296) & 0x40)
    check("CCR: RAT-Type with the M bit", bool(flags_of(req, AVP_TGPP_RAT_TYPE, VENDOR_TGPP) & 0x40))
    ask(p, req, "CCR-I")
    ask(p, ccr("pcef.python.test;1;1", 1, 0x2002), "CCR-U")


def scenario_reconnect(args):
    osi = int(time.time())
    p = open_peer(args, osi)
    first = ccr("pcef.python.test;2;1", 0, 0x3001)
    a1 = ask(p, first, "CCR-I before the crash")
    p.vanish()
    # Back at once, restarted (new Origin-State-Id), maybe before the server saw the reset.
    p = open_peer(args, osi + 1)
    ask(p, ccr("pcef.python.test;2;1", 1, 0x3002), "CCR-U after reconnecting")
    # The first request again, T bit set: the answer the server stored, not a new one.
    again = ccr("pcef.python.test;2;1", 0, 0x3001, retransmit=True)
    again.header.hop_by_hop_identifier = 0x5555
    a1b = ask(p, again, "retransmitted CCR-I")
    check("retransmission answered from the duplicate cache", a1b.wire[16:] == a1.wire[16:])
    p.vanish()
    # Back again with the same Origin-State-Id (no restart, only a new connection).
    time.sleep(0.2)
    p = open_peer(args, osi + 1)
    ask(p, ccr("pcef.python.test;2;1", 2, 0x3003), "CCR-U on a new connection, same state")


def tgpp(avps, code):
    """The AVPs with 3GPP's `code` among `avps`."""
    return [a for a in avps if a.code == code and a.vendor_id == VENDOR_TGPP]


def ietf(avps, code):
    """The AVPs with IETF `code` (no vendor) among `avps`."""
    return [a for a in avps if a.code == code and a.vendor_id == 0]


def one(avps, what):
    """The first of `avps`, or a failed check and None."""
    check(f"{what} present", bool(avps))
    return avps[0] if avps else None


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def gx_request(session, kind, number, e2e, imsi="001010000000001"):
    m = ccr(session, number, e2e, imsi=imsi)
    m.cc_request_type = kind
    return m


def check_initial_cca(ans, req):
    """TS 29.212 §5.6.3: the CCA-I of demo subscriber 1 carries its rule, QoS, charging
    and event triggers (home.toml and spr.toml of the pcrf crate)."""
    avps = wire_avps(ans.wire)
    check("CCA-I: no Experimental-Result", not ietf(avps, 297))
    cri = one(tgpp(avps, 1001), "Charging-Rule-Install")
    if cri is not None:
        rule = one(tgpp(cri.value, 1003), "Charging-Rule-Definition")
        if rule is not None:
            name = one(tgpp(rule.value, 1005), "Charging-Rule-Name")
            check("rule named internet", name is not None and name.value == b"internet",
                  name and name.value)
            rg = one(ietf(rule.value, 432), "Rating-Group")
            check("Rating-Group 10", rg is not None and rg.value == 10, rg and rg.value)
            prec = one(tgpp(rule.value, 1010), "Precedence")
            check("Precedence 1000", prec is not None and prec.value == 1000)
            flow = one(tgpp(rule.value, 1058), "Flow-Information")
            if flow is not None:
                fd = one(tgpp(flow.value, 507), "Flow-Description")
                check("Flow-Description is a permit rule",
                      fd is not None and text(fd.value).startswith("permit out"),
                      fd and fd.value)
                check("Flow-Direction present", bool(tgpp(flow.value, 1080)))
            qos = one(tgpp(rule.value, 1016), "rule QoS-Information")
            if qos is not None:
                qci = one(tgpp(qos.value, 1028), "rule QoS-Class-Identifier")
                check("rule QCI 9", qci is not None and qci.value == 9)
                mbr = one(tgpp(qos.value, 515), "Max-Requested-Bandwidth-DL")
                check("rule MBR DL 100 Mbit/s", mbr is not None and mbr.value == 100000000)
        pre = one(tgpp(cri.value, 1005), "predefined Charging-Rule-Name")
        check("predefined rule local-dns", pre is not None and pre.value == b"local-dns")
    deb = one(tgpp(avps, 1049), "Default-EPS-Bearer-QoS")
    if deb is not None:
        qci = one(tgpp(deb.value, 1028), "default bearer QCI")
        check("default bearer QCI 9", qci is not None and qci.value == 9)
        arp = one(tgpp(deb.value, 1034), "Allocation-Retention-Priority")
        if arp is not None:
            pl = one(tgpp(arp.value, 1046), "Priority-Level")
            check("Priority-Level 8", pl is not None and pl.value == 8)
    ambr = one(tgpp(avps, 1016), "QoS-Information (APN-AMBR)")
    if ambr is not None:
        ul = one(tgpp(ambr.value, 1041), "APN-Aggregate-Max-Bitrate-UL")
        dl = one(tgpp(ambr.value, 1040), "APN-Aggregate-Max-Bitrate-DL")
        check("APN-AMBR 50/100 Mbit/s",
              ul is not None and dl is not None and (ul.value, dl.value) == (50000000, 100000000))
    online = one(tgpp(avps, 1009), "Online")
    check("Online ENABLE_ONLINE", online is not None and online.value == 1)
    ci = one(tgpp(avps, 618), "Charging-Information")
    if ci is not None:
        ocs = one(tgpp(ci.value, 619), "Primary-Event-Charging-Function-Name")
        check("the OCS is ocs.home.test", ocs is not None and "ocs.home.test" in text(ocs.value),
              ocs and ocs.value)
    triggers = sorted(a.value for a in tgpp(avps, 1006))
    check("Event-Trigger RAT_CHANGE and USER_LOCATION_CHANGE", triggers == [2, 13], triggers)
    sf = one(tgpp(avps, 628), "Supported-Features")
    if sf is not None:
        vid = one(ietf(sf.value, 266), "Supported-Features Vendor-Id")
        check("Supported-Features of 3GPP", vid is not None and vid.value == VENDOR_TGPP)
        fl = one(tgpp(sf.value, 630), "Feature-List")
        # Ours 0b1011, the request's 0b0011: both support 0b0011.
        check("Feature-List in common", fl is not None and fl.value == 0b0011, fl and fl.value)


def scenario_gx_pcrf(args):
    p = open_peer(args, osi=int(time.time()))
    sid = f"pcef.python.test;gx;{int(time.time() * 1000)}"
    req = gx_request(sid, E_CC_REQUEST_TYPE_INITIAL_REQUEST, 0, 0x4001)
    req.framed_ip_address = bytes([10, 45, 0, 3])
    req.called_station_id = "internet"
    req.supported_features = SupportedFeatures(
        vendor_id=VENDOR_TGPP, feature_list_id=1, feature_list=0b0011)
    ans = ask(p, req, "CCR-I")
    check_initial_cca(ans, req)

    # A handover to UTRAN reported: the PCRF swaps the Internet rule for the 3G one.
    req = gx_request(sid, E_CC_REQUEST_TYPE_UPDATE_REQUEST, 1, 0x4002)
    req.event_trigger = [2]  # RAT_CHANGE
    req.rat_type = 1000  # UTRAN
    ans = ask(p, req, "CCR-U RAT_CHANGE")
    avps = wire_avps(ans.wire)
    crr = one(tgpp(avps, 1002), "Charging-Rule-Remove")
    check("internet removed",
          crr is not None and [a.value for a in tgpp(crr.value, 1005)] == [b"internet"])
    names = [n.value for c in tgpp(avps, 1001) for d in tgpp(c.value, 1003)
             for n in tgpp(d.value, 1005)]
    check("internet-3g installed", names == [b"internet-3g"], names)

    ask(p, gx_request(sid, E_CC_REQUEST_TYPE_TERMINATION_REQUEST, 2, 0x4003), "CCR-T")
    late = gx_request(sid, E_CC_REQUEST_TYPE_UPDATE_REQUEST, 3, 0x4004)
    p.send(late)
    ans = p.recv()
    check("CCR-U after CCR-T: 5002 DIAMETER_UNKNOWN_SESSION_ID", ans.result_code == 5002,
          f"Result-Code {ans.result_code}")

    stranger = gx_request(f"{sid};stranger", E_CC_REQUEST_TYPE_INITIAL_REQUEST, 0, 0x4005,
                          imsi="999990000000001")
    p.send(stranger)
    ans = p.recv()
    avps = wire_avps(ans.wire)
    check("unknown subscriber: no Result-Code", not ietf(avps, 268))
    er = one(ietf(avps, 297), "Experimental-Result")
    if er is not None:
        vid = one(ietf(er.value, 266), "Experimental-Result Vendor-Id")
        code = one(ietf(er.value, 298), "Experimental-Result-Code")
        check("Experimental-Result 10415/5030",
              vid is not None and code is not None and (vid.value, code.value) == (10415, 5030))
    check("unknown subscriber: no rules", not tgpp(avps, 1001))


AF_HOST = b"pcscf.python.test"
AF_REALM = b"ims.python.test"


def aar(session, ip, e2e, actions=()):
    """An Rx AAR (TS 29.214 §5.6.1) as python-diameter builds it: one audio component with
    RTP flows both ways to the UE at `ip`."""
    m = AaRequest()
    m.header.application_id = APP_3GPP_RX
    m.header.hop_by_hop_identifier = 0x6000 + e2e
    m.header.end_to_end_identifier = e2e
    m.session_id = session
    m.auth_application_id = APP_3GPP_RX
    m.origin_host = AF_HOST
    m.origin_realm = AF_REALM
    m.destination_realm = b"home.test"
    m.auth_request_type = 2  # AUTHORIZE_ONLY; the library requires it, Rx ignores it
    m.framed_ip_address = bytes(ip)
    ue = ".".join(str(b) for b in ip)
    m.media_component_description = MediaComponentDescription(
        media_component_number=1,
        media_type=0,  # AUDIO
        max_requested_bandwidth_ul=64000,
        max_requested_bandwidth_dl=64000,
        media_sub_component=[MediaSubComponent(
            flow_number=1,
            flow_description=[
                f"permit out 17 from 198.51.100.7 40000 to {ue} 50000".encode(),
                f"permit in 17 from {ue} 50000 to 198.51.100.7 40000".encode(),
            ],
        )],
    )
    if actions:
        m.specific_action = list(actions)
    return m


def rx_str(session, e2e):
    m = SessionTerminationRequest()
    m.header.application_id = APP_3GPP_RX
    m.header.hop_by_hop_identifier = 0x7000 + e2e
    m.header.end_to_end_identifier = e2e
    m.session_id = session
    m.origin_host = AF_HOST
    m.origin_realm = AF_REALM
    m.destination_realm = b"home.test"
    m.auth_application_id = APP_3GPP_RX
    m.termination_cause = E_TERMINATION_CAUSE_DIAMETER_LOGOUT
    return m


def answer_request(p, req, origin_host, origin_realm, rc=2001):
    """Answers a request from the server (RAR, ASR) with `rc`, the library's way."""
    a = req.to_answer()
    a.session_id = req.session_id
    a.origin_host = origin_host
    a.origin_realm = origin_realm
    a.result_code = rc
    p.send(a)


def expect_request(p, code, app, what):
    m = p.recv()
    check(f"{what}: a request {code} of application {app}",
          m.header.is_request and m.header.command_code == code and m.header.application_id == app,
          f"command {m.header.command_code}, application {m.header.application_id}")
    return m


def scenario_rx_pcrf(args):
    osi = int(time.time())
    pcef = open_peer(args, osi)
    af = open_peer(args, osi, app=APP_3GPP_RX, origin_host=AF_HOST)
    apps = advertised_apps(af.cea)
    check("CEA advertises Gx, Gxx and Rx of 3GPP",
          all(a in apps for a in (16777238, 16777266, 16777236)), apps)
    gx_sid = f"pcef.python.test;rx;{int(time.time() * 1000)}"
    req = gx_request(gx_sid, E_CC_REQUEST_TYPE_INITIAL_REQUEST, 0, 0x5001)
    req.framed_ip_address = bytes([10, 45, 0, 4])
    req.called_station_id = "ims"
    ask(pcef, req, "CCR-I")

    # AAR: the PCRF binds it by UE address and installs the media over Gx before the AAA.
    rx_sid = f"pcscf.python.test;call;{int(time.time() * 1000)}"
    af.send(aar(rx_sid, [10, 45, 0, 4], 0x6001))
    rar = expect_request(pcef, 258, APP_3GPP_GX, "Gx RAR for the AF session")
    check("Gx RAR on the IP-CAN session", rar.session_id == gx_sid)
    avps = wire_avps(rar.wire)
    cri = one(tgpp(avps, 1001), "Charging-Rule-Install")
    rule_name = None
    if cri is not None:
        rule = one(tgpp(cri.value, 1003), "Charging-Rule-Definition")
        if rule is not None:
            name = one(tgpp(rule.value, 1005), "Charging-Rule-Name")
            rule_name = name.value if name is not None else None
            check("rule named rx-…-1", rule_name is not None and rule_name.startswith(b"rx-")
                  and rule_name.endswith(b"-1"), rule_name)
            flows = [(text(one(tgpp(f.value, 507), "Flow-Description").value),
                      one(tgpp(f.value, 1080), "Flow-Direction").value)
                     for f in tgpp(rule.value, 1058)]
            check("both flows, downlink and uplink",
                  flows == [("permit out 17 from 198.51.100.7 40000 to 10.45.0.4 50000", 1),
                            ("permit out 17 from 10.45.0.4 50000 to 198.51.100.7 40000", 2)],
                  flows)
            qos = one(tgpp(rule.value, 1016), "rule QoS-Information")
            if qos is not None:
                qci = one(tgpp(qos.value, 1028), "QCI")
                check("audio: QCI 1", qci is not None and qci.value == 1, qci and qci.value)
                gbr = one(tgpp(qos.value, 1026), "Guaranteed-Bitrate-UL")
                check("GBR UL 64 kbit/s", gbr is not None and gbr.value == 64000, gbr and gbr.value)
    answer_request(pcef, rar, ORIGIN_HOST, ORIGIN_REALM)
    aaa = af.recv()
    check("AAA 2001", aaa.result_code == 2001, f"Result-Code {aaa.result_code}")
    check("AAA on the AF session", aaa.session_id == rx_sid)

    # STR: the rule is removed over Gx before the STA.
    af.send(rx_str(rx_sid, 0x7001))
    rar = expect_request(pcef, 258, APP_3GPP_GX, "Gx RAR for STR")
    crr = one(tgpp(wire_avps(rar.wire), 1002), "Charging-Rule-Remove")
    check("the AF session's rule removed",
          crr is not None and [a.value for a in tgpp(crr.value, 1005)] == [rule_name])
    answer_request(pcef, rar, ORIGIN_HOST, ORIGIN_REALM)
    sta = af.recv()
    check("STA 2001", sta.result_code == 2001, f"Result-Code {sta.result_code}")

    # A second AF session, subscribed to INDICATION_OF_LOSS_OF_BEARER; then CCR-T.
    rx_sid2 = rx_sid + ";2"
    af.send(aar(rx_sid2, [10, 45, 0, 4], 0x6002, actions=[2]))
    rar = expect_request(pcef, 258, APP_3GPP_GX, "Gx RAR for the second AF session")
    answer_request(pcef, rar, ORIGIN_HOST, ORIGIN_REALM)
    check("second AAA 2001", af.recv().result_code == 2001)
    ask(pcef, gx_request(gx_sid, E_CC_REQUEST_TYPE_TERMINATION_REQUEST, 1, 0x5002), "CCR-T")
    note = expect_request(af, 258, APP_3GPP_RX, "Rx RAR after CCR-T")
    navps = wire_avps(note.wire)
    check("Rx RAR on the AF session", note.session_id == rx_sid2)
    check("Specific-Action INDICATION_OF_LOSS_OF_BEARER",
          [a.value for a in tgpp(navps, 513)] == [2], [a.value for a in tgpp(navps, 513)])
    cause = one(tgpp(navps, 500), "Abort-Cause")
    check("Abort-Cause BEARER_RELEASED", cause is not None and cause.value == 0)
    answer_request(af, note, AF_HOST, AF_REALM)
    af.send(rx_str(rx_sid2, 0x7002))
    check("STA 2001 after the loss", af.recv().result_code == 2001)

    # No IP-CAN session for the address: IP-CAN_SESSION_NOT_AVAILABLE.
    af.send(aar(rx_sid + ";3", [10, 45, 0, 4], 0x6003))
    a = af.recv()
    aavps = wire_avps(a.wire)
    check("no IP-CAN session: no Result-Code", not ietf(aavps, 268))
    er = one(ietf(aavps, 297), "Experimental-Result")
    if er is not None:
        code = one(ietf(er.value, 298), "Experimental-Result-Code")
        check("Experimental-Result-Code 5065", code is not None and code.value == 5065,
              code and code.value)


def scenario_gx_redirect(args):
    dra = open_peer(args, osi=int(time.time()))
    sid = f"pcef.python.test;redirect;{int(time.time() * 1000)}"
    req = gx_request(sid, E_CC_REQUEST_TYPE_INITIAL_REQUEST, 0, 0x5001)
    req.framed_ip_address = bytes([10, 45, 0, 7])
    req.called_station_id = "internet"
    req.supported_features = SupportedFeatures(
        vendor_id=VENDOR_TGPP, feature_list_id=1, feature_list=0b0011)
    dra.send(req)
    ans = dra.recv()
    # RFC 6733 §6.1.7, §6.12-6.14: 3006 with the E bit, Redirect-Host, usage, cache time.
    check("CCR-I at the DRA: 3006 DIAMETER_REDIRECT_INDICATION", ans.result_code == 3006,
          f"Result-Code {ans.result_code}")
    check("CCR-I at the DRA: E bit", bool(ans.header.is_error))
    avps = wire_avps(ans.wire)
    rh = one(ietf(avps, 292), "Redirect-Host")
    check("Redirect-Host-Usage present", bool(ietf(avps, 261)))
    check("Redirect-Max-Cache-Time present", bool(ietf(avps, 262)))
    if rh is None:
        return
    uri = text(rh.value)
    check("Redirect-Host names the PCRF", uri.startswith("aaa://pcrf.home.test:"), uri)
    port = int(uri.split("://", 1)[1].split(";", 1)[0].rsplit(":", 1)[1])
    pcrf = Peer(args.host, port)
    pcrf.send(cer(int(time.time())))
    cea = pcrf.recv()
    check("CEA from the PCRF 2001", cea.result_code == 2001, f"Result-Code {cea.result_code}")
    check("the PCRF is pcrf.home.test", text(cea.origin_host) == "pcrf.home.test",
          cea.origin_host)
    req.header.hop_by_hop_identifier = 0x6001
    req.header.end_to_end_identifier = 0x5002
    ans = ask(pcrf, req, "CCR-I followed to the PCRF")
    check_initial_cca(ans, req)
    # Termination to both (document 002): the PCRF ends the session, the DRA marks it.
    ask(pcrf, gx_request(sid, E_CC_REQUEST_TYPE_TERMINATION_REQUEST, 1, 0x5003), "CCR-T at the PCRF")
    ans = ask(dra, gx_request(sid, E_CC_REQUEST_TYPE_TERMINATION_REQUEST, 1, 0x5004), "CCR-T at the DRA")
    check("CCA-T from the DRA itself", text(ans.origin_host) == "dra.home.test", ans.origin_host)


def gy_ccr(args, session, request_type, number, mscc):
    """A Gy CCR (RFC 4006 §3.1) with one MSCC built from `mscc`'s keyword arguments."""
    m = CreditControlRequest()
    m.header.application_id = APP_DIAMETER_CREDIT_CONTROL_APPLICATION
    m.header.hop_by_hop_identifier = 0x6000 + number
    m.header.end_to_end_identifier = 0x7000 + number
    m.session_id = session
    m.origin_host = ORIGIN_HOST
    m.origin_realm = ORIGIN_REALM
    m.destination_realm = b"home.test"
    m.auth_application_id = APP_DIAMETER_CREDIT_CONTROL_APPLICATION
    m.service_context_id = "32251@3gpp.org"
    m.cc_request_type = request_type
    m.cc_request_number = number
    if request_type == E_CC_REQUEST_TYPE_INITIAL_REQUEST:
        m.subscription_id = [
            SubscriptionId(
                subscription_id_type=E_SUBSCRIPTION_ID_TYPE_END_USER_IMSI,
                subscription_id_data=args.imsi,
            )
        ]
        m.multiple_services_indicator = 1  # MULTIPLE_SERVICES_SUPPORTED
    if request_type == E_CC_REQUEST_TYPE_TERMINATION_REQUEST:
        m.termination_cause = E_TERMINATION_CAUSE_DIAMETER_LOGOUT
    m.add_multiple_services_credit_control(rating_group=1, **mscc)
    return m


def check_mscc(ans, what, granted):
    """RFC 4006 §8.16: one MSCC answering rating group 1 with its own Result-Code and, unless
    the session ends, a Granted-Service-Unit (§5.1.2: no grant on termination)."""
    msccs = ans.multiple_services_credit_control
    check(f"{what}: one MSCC", len(msccs) == 1, f"{len(msccs)}")
    if not msccs:
        return
    m = msccs[0]
    check(f"{what}: MSCC Rating-Group 1", m.rating_group == 1, f"{m.rating_group}")
    check(f"{what}: MSCC Result-Code 2001", m.result_code == 2001, f"{m.result_code}")
    gsu = m.granted_service_unit
    if granted:
        octets = gsu.cc_total_octets if gsu is not None else None
        check(f"{what}: Granted-Service-Unit with CC-Total-Octets", bool(octets) and octets > 0,
              f"{octets}")
    else:
        check(f"{what}: no Granted-Service-Unit", gsu is None, f"{gsu}")


def scenario_gy(args):
    app = APP_DIAMETER_CREDIT_CONTROL_APPLICATION
    p = open_peer(args, osi=int(time.time()), app=app)
    session = f"pcef.python.test;{int(time.time())};gy"
    a = ask(p, gy_ccr(args, session, E_CC_REQUEST_TYPE_INITIAL_REQUEST, 0,
                      {"requested_service_unit": RequestedServiceUnit()}), "CCR-I", app)
    check_mscc(a, "CCR-I", granted=True)
    a = ask(p, gy_ccr(args, session, E_CC_REQUEST_TYPE_UPDATE_REQUEST, 1,
                      {"requested_service_unit": RequestedServiceUnit(),
                       "used_service_unit": UsedServiceUnit(cc_total_octets=500_000)}),
            "CCR-U", app)
    check_mscc(a, "CCR-U", granted=True)
    a = ask(p, gy_ccr(args, session, E_CC_REQUEST_TYPE_TERMINATION_REQUEST, 2,
                      {"used_service_unit": UsedServiceUnit(cc_total_octets=100_000)}),
            "CCR-T", app)
    check_mscc(a, "CCR-T", granted=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument(
        "--scenario",
        choices=["mbit", "reconnect", "gx-pcrf", "gx-redirect", "rx-pcrf", "gy"],
        required=True,
    )
    ap.add_argument("--imsi", default="001010000000001")
    args = ap.parse_args()
    scenarios = {
        "mbit": scenario_mbit,
        "reconnect": scenario_reconnect,
        "gx-pcrf": scenario_gx_pcrf,
        "rx-pcrf": scenario_rx_pcrf,
        "gx-redirect": scenario_gx_redirect,
        "gy": scenario_gy,
    }
    try:
        scenarios[args.scenario](args)
    except Exception as e:  # a closed connection or a timeout is a failed check
        check("scenario ran to the end", False, repr(e))
    print(f"{len(FAILURES)} failed")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
