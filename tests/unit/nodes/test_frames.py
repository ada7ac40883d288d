"""The agent protocol's frames: a stream is complete only with its end frame."""

from __future__ import annotations

import io
import json

import pytest

from vzbackup.errors import EnvironmentBroken, IntegrityError, NodeUnreachable
from vzbackup.nodes.frames import PROTOCOL, FramedStream, read_frame, write_json, write_stream
from vzbackup.nodes.jobs import error_from_dict, error_to_dict


def framed(data: bytes, size: int = 7) -> bytes:
    out = io.BytesIO()
    write_stream(out, io.BytesIO(data), size)
    return out.getvalue()


def test_a_stream_round_trips_and_ends_at_its_end_frame():
    data = bytes(range(256)) * 40
    wire = framed(data) + b"after"
    inp = io.BytesIO(wire)
    stream = FramedStream(inp, "test")
    assert stream.read(5) + stream.read() == data
    assert stream.ended and stream.read(10) == b""
    assert inp.read() == b"after"  # nothing beyond the end frame was consumed


def test_a_cut_stream_raises_instead_of_ending():
    wire = framed(b"x" * 100)[:-5]  # the end frame is missing
    stream = FramedStream(io.BytesIO(wire), "restore stream")
    with pytest.raises(NodeUnreachable, match="restore stream: the stream was cut"):
        stream.read()
    half = framed(b"y" * 100)[:20]  # cut inside a frame
    with pytest.raises(NodeUnreachable, match="in the middle of a message"):
        FramedStream(io.BytesIO(half), "dump").read()


def test_messages_inside_a_stream_and_an_error_that_ends_it():
    out = io.BytesIO()
    write_json(out, {"advance": 3})
    out.write(framed(b"abc")[:-5])  # data, but instead of the end frame: an error
    write_json(out, {"error": {"type": "DumpFailed", "message": "tar failed"}})
    seen = []
    stream = FramedStream(io.BytesIO(out.getvalue()), "dump", on_json=seen.append)
    assert stream.read() == b"abc"
    assert seen == [{"advance": 3}] and stream.last["error"]["message"] == "tar failed"


def test_garbage_is_not_taken_for_frames():
    with pytest.raises(EnvironmentBroken, match="not the vzbackup agent protocol"):
        read_frame(io.BytesIO(b"Welcome to node7!\n"), "node node7")


def test_errors_keep_their_class_and_name_the_node():
    e = error_from_dict(error_to_dict(IntegrityError("chunk 3 is damaged", hint="verify")), "node7")
    assert type(e) is IntegrityError and e.exit_code == 7
    assert e.message == "on node node7: chunk 3 is damaged" and e.hint == "verify"
    unknown = error_from_dict({"type": "NewError", "exit_code": 16, "message": "m"}, "node7")
    assert unknown.exit_code == 16


def test_the_agent_never_sends_a_secret_back_in_an_error(monkeypatch):
    import vzbackup.cli.agent as agent

    job = {"protocol": PROTOCOL, "op": "backup", "node": {}, "guest": {},
           "repository": {"passphrase": "hunter2-passphrase", "secret_key": "s3-secret-value"}}

    def leaky(job, inp, out):  # a message quoting secrets, as a careless library might
        raise IntegrityError("cannot open with hunter2-passphrase and s3-secret-value")

    monkeypatch.setattr(agent, "_dispatch", leaky)
    out = io.BytesIO()
    assert agent.run_job(io.BytesIO(json.dumps(job).encode() + b"\n"), out) == 7
    kind, payload = read_frame(io.BytesIO(out.getvalue()), "test")
    assert b"hunter2" not in payload and b"s3-secret" not in payload and b"***" in payload


def test_a_silent_agent_sends_heartbeats_that_the_controller_skips(monkeypatch):
    import threading
    import time

    import vzbackup.cli.agent as agent

    monkeypatch.setattr(agent, "HEARTBEAT", 0.1)
    out = agent._Serialized(io.BytesIO())
    threading.Thread(target=agent._heartbeat, args=(out,), daemon=True).start()
    time.sleep(0.5)
    wire = io.BytesIO(out._inner.getvalue())
    frames = iter(lambda: read_frame(wire, "test"), None)
    assert {payload for _, payload in frames} == {b'{"alive":true}'}


def test_the_controller_skips_heartbeats_while_waiting_for_a_result():
    from types import SimpleNamespace

    from vzbackup.nodes.remote import SshNode

    wire = io.BytesIO()
    for message in ({"alive": True}, {"advance": 5}, {"alive": True}, {"done": {"x": 1}}):
        write_json(wire, message)
    proc = SimpleNamespace(stdout=io.BytesIO(wire.getvalue()), kill=lambda: None)
    node = SshNode("node7", SimpleNamespace(start=lambda argv, timeout: proc), ["vzbackup"],
                   {"platform": "directory"})
    node._start = lambda job: proc  # the job line is not the point here
    seen = []
    assert node.run({"op": "x"}, seen.append) == {"x": 1} and seen == [5]
