"""The Locust charger without Locust: its schedule and sessions, the payloads it sends (each
valid against its OCPP schema), its answers to CSMS-initiated calls, its ids, and the
capacity figures. Plain synchronous tests: this process never imports locust (gevent would
monkey-patch it)."""

from __future__ import annotations

import random
import sys
from collections import Counter
from itertools import count
from typing import Any

import orjson
import pytest

from csms.protocol.frames import Call
from csms.protocol.schemas import validate_request, validate_response
from loadtest.locust_charger import NEVER, ChargerModel, Message, Phase, Profile
from loadtest.locust_figures import Step, StepResult, capacity, knee
from loadtest.locust_fleet import charge_point_id, station_ids, token_pool, worker_of
from loadtest.locust_run import ActionStats, locust_argv, read_stats
from loadtest.locust_v201 import HeartbeatCharger201

T0 = 1_800_000_000.0
STRESS = Profile(name="stress")
QUICK = Profile(
    heartbeat_interval=30.0, meter_interval=10.0, sessions_per_day=200.0, session_minutes=2.0
)


def test_no_locust_in_this_process() -> None:
    assert "locust" not in sys.modules and "gevent" not in sys.modules


class FakeCsms:
    """Answers like an accepting CSMS, with schema-valid payloads; checks every request."""

    def __init__(self, tag_status: str = "Accepted", boot_status: str = "Accepted") -> None:
        self.tag_status = tag_status
        self.boot_status = boot_status
        self.sent: list[Message] = []
        self.transactions = count(100)

    def reply(self, message: Message) -> dict[str, Any]:
        action, payload = message
        validate_request("ocpp1.6", action, payload)
        self.sent.append(message)
        info = {"status": self.tag_status}
        replies: dict[str, dict[str, Any]] = {
            "BootNotification": {
                "status": self.boot_status,
                "currentTime": "2027-01-15T08:00:00.000Z",
                "interval": 60,
            },
            "Heartbeat": {"currentTime": "2027-01-15T08:00:00.000Z"},
            "Authorize": {"idTagInfo": info},
            "StartTransaction": {"transactionId": next(self.transactions), "idTagInfo": info},
            "StopTransaction": {"idTagInfo": info},
        }
        answer = replies.get(action, {})
        validate_response("ocpp1.6", action, answer)
        return answer


def drive(
    charger: ChargerModel, csms: FakeCsms, until: float, now: float = T0, limit: int = 100_000
) -> tuple[float, list[str]]:
    """Step the charger like the Locust user does, jumping over its waits; at most `limit`
    messages (a stress charger never waits)."""
    refusals = []
    while now < until and len(csms.sent) < limit:
        message = charger.next_message(now)
        if message is None:
            delay = charger.delay(now)
            if delay == NEVER:
                break
            now += max(delay, 0.001)
            continue
        refusal = charger.on_result(message[0], csms.reply(message), now)
        if refusal:
            refusals.append(refusal)
    return now, refusals


def make(profile: Profile = QUICK, tokens: int = 10, seed: int = 1) -> ChargerModel:
    return ChargerModel("LT-0-00001", profile, token_pool(size=tokens), random.Random(seed), T0)


def actions(messages: list[Message]) -> list[str]:
    return [a if a != "StatusNotification" else f"Status:{p['status']}" for a, p in messages]


def test_stress_charger_runs_sessions_back_to_back_without_waits() -> None:
    charger, csms = make(STRESS), FakeCsms()
    for _ in range(3 + 2 * 10):
        message = charger.next_message(T0)
        assert message is not None
        charger.on_result(message[0], csms.reply(message), T0)
        assert charger.delay(T0) == 0
    session = [
        "Authorize",
        "Status:Preparing",
        "StartTransaction",
        "Status:Charging",
        *["MeterValues"] * 3,
        "StopTransaction",
        "Status:Available",
        "Heartbeat",
    ]
    boot = ["BootNotification", "Status:Available", "Status:Available"]
    assert actions(csms.sent) == boot + session + session
    starts = [p for a, p in csms.sent if a == "StartTransaction"]
    assert len({p["timestamp"] for p in starts}) == 2  # strictly increasing, even at one instant


def test_realistic_charger_paces_heartbeats_meter_values_and_sessions() -> None:
    charger, csms = make(QUICK), FakeCsms()
    _, refusals = drive(charger, csms, T0 + 6 * 3600)
    assert refusals == []
    sent = Counter(a for a, _ in csms.sent)
    assert sent["BootNotification"] == 1
    # About one heartbeat per 30 s, whatever else is sent.
    assert 6 * 3600 / 30 - 5 <= sent["Heartbeat"] <= 6 * 3600 / 30 + 1
    sessions = sent["StartTransaction"]
    assert sessions >= 20 and sent["StopTransaction"] >= sessions - 1
    # A 2-minute session (1 to 3 min) with a sample every 10 s.
    assert 5 * sessions <= sent["MeterValues"] <= 19 * sessions
    registers = [
        int(p["meterValue"][0]["sampledValue"][0]["value"])
        for a, p in csms.sent
        if a == "MeterValues"
    ]
    assert registers == sorted(registers) and registers[-1] > registers[0]


def test_a_fleet_that_boots_together_spreads_its_heartbeats() -> None:
    firsts = []
    for seed in range(40):
        charger, csms = make(QUICK, seed=seed), FakeCsms()
        drive(charger, csms, T0 + 1)
        firsts.append(charger.heartbeat_due - T0)
    assert min(firsts) < 10 and max(firsts) > 20  # spread over the 30 s interval


def test_the_csms_heartbeat_interval_is_used_when_none_is_given() -> None:
    charger, csms = make(Profile()), FakeCsms()
    drive(charger, csms, T0 + 0.5)
    assert charger.heartbeat_interval == 60  # FakeCsms's boot interval
    assert charger.config.get("HeartbeatInterval") == "60"


def test_refused_boot_is_a_refusal_and_is_retried_after_the_interval() -> None:
    charger, csms = make(), FakeCsms(boot_status="Rejected")
    _, refusals = drive(charger, csms, T0 + 130)
    assert refusals == ["BootNotification: Rejected"] * 3  # at 0, 60 and 120 s
    assert [a for a, _ in csms.sent] == ["BootNotification"] * 3


def test_refused_tag_is_a_refusal_and_no_transaction_starts() -> None:
    charger, csms = make(STRESS), FakeCsms(tag_status="Invalid")
    _, refusals = drive(charger, csms, T0 + 1, limit=50)
    assert refusals and all(r.startswith("Authorize: idTag TAG") for r in refusals)
    assert "StartTransaction" not in {a for a, _ in csms.sent}


def test_refused_start_is_stopped_at_once() -> None:
    charger, csms = make(STRESS), FakeCsms()
    drive(charger, csms, T0 + 1, limit=3)
    assert charger.phase is Phase.IDLE and not charger.urgent
    charger.begin_session("TAG0001", T0, authorize=False)
    for action in ("StatusNotification", "StartTransaction"):
        message = charger.next_message(T0)
        assert message is not None and message[0] == action
        payload = csms.reply(message)
        if action == "StartTransaction":
            payload["idTagInfo"] = {"status": "ConcurrentTx"}
        refusal = charger.on_result(action, payload, T0)
    assert refusal == "StartTransaction: idTag TAG0001 is ConcurrentTx"
    stop = charger.next_message(T0)
    assert stop is not None and stop[0] == "StopTransaction"
    assert stop[1]["reason"] == "DeAuthorized"


def test_a_lost_connection_boots_again_and_keeps_the_session() -> None:
    charger, csms = make(STRESS), FakeCsms()
    while charger.phase is not Phase.CHARGING or charger.urgent:
        message = charger.next_message(T0)
        assert message is not None
        charger.on_result(message[0], csms.reply(message), T0)
    charger.on_disconnect(T0)
    assert charger.next_message(T0) is None and charger.delay(T0) == 1.0  # stress retry
    message = charger.next_message(T0 + 1)
    assert message is not None and message[0] == "BootNotification"
    assert charger.phase is Phase.CHARGING and charger.tx_id is not None


# -- CSMS-initiated calls ------------------------------------------------------------------


def booted(profile: Profile = QUICK) -> tuple[ChargerModel, FakeCsms]:
    charger, csms = make(profile), FakeCsms()
    for _ in range(3):  # boot and two status notifications
        message = charger.next_message(T0)
        assert message is not None
        charger.on_result(message[0], csms.reply(message), T0)
    return charger, csms


def ask(charger: ChargerModel, action: str, payload: dict[str, Any]) -> list[Any]:
    frame: list[Any] = orjson.loads(charger.answer(Call("m1", action, payload), T0))
    assert frame[1] == "m1"
    if frame[0] == 3:
        validate_response("ocpp1.6", action, frame[2])
    return frame


def send_all(charger: ChargerModel, csms: FakeCsms) -> list[str]:
    sent = []
    while charger.urgent:
        message = charger.next_message(T0)
        assert message is not None
        sent.append(message[0])
        charger.on_result(message[0], csms.reply(message), T0)
    return sent


def charging() -> tuple[ChargerModel, FakeCsms]:
    charger, csms = booted()
    assert ask(charger, "RemoteStartTransaction", {"idTag": "APP1"})[2] == {"status": "Accepted"}
    assert send_all(charger, csms) == [
        "StatusNotification",
        "StartTransaction",
        "StatusNotification",
    ]
    assert charger.phase is Phase.CHARGING and charger.id_tag == "APP1"
    return charger, csms


def test_remote_start_and_stop() -> None:
    charger, _ = charging()
    assert ask(charger, "RemoteStartTransaction", {"idTag": "APP2"})[2]["status"] == "Rejected"
    wrong = ask(charger, "RemoteStopTransaction", {"transactionId": 99999})
    assert wrong[2] == {"status": "Rejected"}
    right = ask(charger, "RemoteStopTransaction", {"transactionId": charger.tx_id})
    assert right[2] == {"status": "Accepted"}
    stop = charger.next_message(T0)
    assert stop is not None and stop[0] == "StopTransaction" and stop[1]["reason"] == "Remote"


def test_reset_stops_the_session_then_reboots_hard_resets_reconnect() -> None:
    charger, csms = charging()
    assert ask(charger, "Reset", {"type": "Hard"})[2] == {"status": "Accepted"}
    stop = charger.next_message(T0)
    assert stop is not None and stop[1]["reason"] == "HardReset"
    charger.on_result("StopTransaction", csms.reply(stop), T0)
    send_all(charger, csms)
    assert charger.next_message(T0) is None and charger.reconnect_requested
    assert charger.delay(T0) == 0
    boot = charger.next_message(T0)
    assert boot is not None and boot[0] == "BootNotification"


def test_trigger_message_queues_the_requested_message() -> None:
    charger, csms = charging()
    for requested in ("MeterValues", "Heartbeat", "StatusNotification", "BootNotification"):
        assert ask(charger, "TriggerMessage", {"requestedMessage": requested})[2] == {
            "status": "Accepted"
        }
        message = charger.next_message(T0)
        assert message is not None and message[0] == requested
        charger.on_result(requested, csms.reply(message), T0)
        send_all(charger, csms)
    assert ask(charger, "TriggerMessage", {"requestedMessage": "Heartbeat", "connectorId": 2})[
        2
    ] == {"status": "Rejected"}


def test_configuration_get_and_change_retimes_heartbeats() -> None:
    charger, _ = booted()
    got = ask(charger, "GetConfiguration", {"key": ["HeartbeatInterval", "Nope"]})[2]
    assert got["configurationKey"][0]["key"] == "HeartbeatInterval"
    assert got["unknownKey"] == ["Nope"]
    changed = ask(charger, "ChangeConfiguration", {"key": "heartbeatinterval", "value": "7"})
    assert changed[2] == {"status": "Accepted"}
    assert charger.heartbeat_interval == 7 and charger.heartbeat_due == T0 + 7
    readonly = ask(charger, "ChangeConfiguration", {"key": "NumberOfConnectors", "value": "3"})
    assert readonly[2] == {"status": "Rejected"}
    unknown = ask(charger, "ChangeConfiguration", {"key": "Colour", "value": "blue"})
    assert unknown[2] == {"status": "NotSupported"}


def test_unlock_and_availability() -> None:
    charger, csms = charging()
    assert ask(charger, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})[2] == {
        "status": "Scheduled"
    }
    assert ask(charger, "UnlockConnector", {"connectorId": 1})[2] == {"status": "Unlocked"}
    assert ask(charger, "UnlockConnector", {"connectorId": 2})[2] == {"status": "NotSupported"}
    stop = charger.next_message(T0)
    assert stop is not None and stop[1]["reason"] == "UnlockCommand"
    charger.on_result("StopTransaction", csms.reply(stop), T0)
    status = charger.next_message(T0)
    assert status is not None and status[1]["status"] == "Unavailable"
    assert charger.next_message(T0 + 10 * 86400) != ("Authorize", {"idTag": charger.id_tag})
    assert ask(charger, "ChangeAvailability", {"connectorId": 1, "type": "Operative"})[2] == {
        "status": "Accepted"
    }
    assert charger.available


@pytest.mark.parametrize(
    ("action", "payload", "code"),
    [
        ("ReserveNow", {}, "NotSupported"),
        ("FlyToTheMoon", {}, "NotImplemented"),
        ("Reset", {"type": "Sideways"}, "PropertyConstraintViolation"),
        ("Reset", {}, "OccurenceConstraintViolation"),
        ("RemoteStartTransaction", {"idTag": 7}, "TypeConstraintViolation"),
    ],
)
def test_calls_it_cannot_do_get_the_right_callerror(
    action: str, payload: dict[str, Any], code: str
) -> None:
    charger, _ = booted()
    frame = ask(charger, action, payload)
    assert frame[0] == 4 and frame[2] == code


def test_other_answers_are_schema_valid() -> None:
    charger, _ = booted()
    assert ask(charger, "ClearCache", {})[2] == {"status": "Accepted"}
    assert ask(charger, "DataTransfer", {"vendorId": "x"})[2] == {"status": "UnknownVendorId"}


def test_v201_charger_sends_valid_201_payloads() -> None:
    charger = HeartbeatCharger201("LT-0-00002", STRESS, T0)
    sent = []
    for _ in range(4):
        message = charger.next_message(T0)
        assert message is not None
        validate_request("ocpp2.0.1", *message)
        sent.append(message[0])
        reply = {"status": "Accepted", "interval": 60, "currentTime": "2027-01-15T08:00:00Z"}
        charger.on_result(message[0], reply if message[0] == "BootNotification" else {}, T0)
    assert sent == ["BootNotification", "StatusNotification", "Heartbeat", "Heartbeat"]
    frame = orjson.loads(charger.answer(Call("9", "GetVariables", {}), T0))
    assert frame[:3] == [4, "9", "NotSupported"]


# -- ids, CSVs, figures --------------------------------------------------------------------


def test_ids_are_unique_across_workers_and_users() -> None:
    ids = list(station_ids("LT-", workers=3, users=200))
    assert len(set(ids)) == 600
    assert ids[0] == charge_point_id("LT-", 0, 1) == "LT-0-00001"
    assert {worker_of(i, "LT-") for i in ids} == {0, 1, 2}
    assert token_pool(size=3) == ["TAG0000", "TAG0001", "TAG0002"]


def test_locust_argv_turns_options_into_ocpp_flags(tmp_path: Any) -> None:
    argv = locust_argv("ws://h/ocpp", 5, 2.5, tmp_path / "x", options={"id_prefix": "A-"})
    assert argv[argv.index("--ocpp-id-prefix") + 1] == "A-"
    assert argv[argv.index("-r") + 1] == "2.5" and "--headless" in argv


def test_read_stats_parses_locusts_csv(tmp_path: Any) -> None:
    head = (
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
        "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
        "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
    )
    rows = [
        "OCPP1.6,Heartbeat,10,1,2,2.5,1,9.5,40,5,0.5,2,2,3,3,4,5,6,9,9,9,9",
        ",Aggregated,10,1,2,2.5,1,9.5,40,5,0.5,2,2,3,3,4,5,6,9,9,9,9",
        "WS,connect,0,0,0,0,0,0,0,0,0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A",
    ]
    (tmp_path / "r_stats.csv").write_text("\n".join([head, *rows]) + "\n")
    stats = read_stats(tmp_path / "r")
    heartbeat = stats[("OCPP1.6", "Heartbeat")]
    assert (heartbeat.requests, heartbeat.failures, heartbeat.p50_ms, heartbeat.p99_ms) == (
        10,
        1,
        2.0,
        9.0,
    )
    assert stats[("", "Aggregated")].requests == 10 and stats[("WS", "connect")].p99_ms == 0.0
    assert read_stats(tmp_path / "missing") == {}


def result(profile: str, chargers: int, requests: int, p99: float, cpu: float) -> StepResult:
    total = ActionStats("", "Aggregated", requests, 0, 1.0, p99, 1.0, p99, p99)
    return StepResult(Step(profile, chargers), 10.0, [], total, cpu, 50.0, 60.0, 30.0)


def test_knee_and_chargers_per_core() -> None:
    results = [
        result("realistic", 1000, 100, 5, 2.0),
        result("realistic", 2000, 200, 8, 4.0),
        result("realistic", 5000, 500, 150, 10.0),  # over the p99 limit: not counted
        result("stress", 10, 40_000, 5, 95.0),
        result("stress", 20, 60_000, 6, 99.0),  # most msgs/s per ms of p99
        result("stress", 40, 62_000, 20, 99.0),
    ]
    assert knee(results) is results[4]
    cap = capacity(results)
    assert cap.by_cpu_step == 2000 and cap.by_cpu == pytest.approx(50_000)
    assert cap.realistic_msgs_per_charger_s == pytest.approx(0.01)  # 20 msgs/s, 2000 chargers
    assert cap.stress_msgs_per_s == pytest.approx(6200)
    assert cap.by_stress == pytest.approx(620_000)
    assert cap.chargers_per_core == pytest.approx(50_000)
    assert capacity([]).chargers_per_core is None and knee([]) is None
