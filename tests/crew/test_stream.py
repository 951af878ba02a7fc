"""The crew stream hub (geodispatch.crew.stream) on its own: resume ids, one slot per stream, and
the token check that ends revoked streams. The HTTP stream itself is tested in
tests/web/test_crew_stream.py."""

from __future__ import annotations

from typing import Any

from geodispatch.crew.stream import CrewHub


def _hub() -> CrewHub:
    def no_database() -> Any:
        raise AssertionError("these checks read no database")

    return CrewHub(no_database)


def test_a_resume_id_is_up_to_date_only_for_this_process_and_no_later_change() -> None:
    """Last-Event-ID counts only when it is this hub's and no notice of the unit came after."""
    hub = _hub()
    hub.units_changed([7])
    seen = hub.event_id(hub.now())
    assert hub.up_to_date(7, seen)
    assert hub.up_to_date(8, seen)  # another unit's change is no reason to resend
    hub.units_changed([8])
    assert hub.up_to_date(7, seen) and not hub.up_to_date(8, seen)
    hub.units_changed([7])
    assert not hub.up_to_date(7, seen)
    for bad in (None, "", "x", seen.replace(hub.epoch, "other"), hub.epoch + ".", "1.2.3"):
        assert not hub.up_to_date(7, bad), bad
    assert hub.seq_of(seen) == 1 and hub.seq_of("other.5") == 0


def test_a_stream_holds_only_the_newest_screen() -> None:
    """A slow stream skips states instead of queueing them: one slot, newest wins."""
    hub = _hub()
    sub = hub.subscribe(3, "h")
    sub.offer("e.1", {"n": 1})
    sub.offer("e.2", {"n": 2})
    assert sub.wake.is_set()
    assert sub.take() == ("e.2", {"n": 2})
    assert sub.take() is None and not sub.wake.is_set()
    hub.unsubscribe(sub)
    assert hub.open_streams() == 0


def test_streams_of_a_deactivated_unit_or_a_replaced_token_are_ended() -> None:
    """check_tokens ends exactly the streams whose unit is gone or whose hash changed."""
    hub = _hub()
    keep, rotated, gone = hub.subscribe(1, "h1"), hub.subscribe(2, "h2"), hub.subscribe(3, "h3")
    late = hub.subscribe(4, "h4")  # subscribed while the hashes were read: not judged yet
    assert hub.check_tokens({1: "h1", 2: "h2-new"}, [1, 2, 3]) == 2
    assert keep.ended is None and late.ended is None
    assert rotated.ended == "revoked" and gone.ended == "revoked"
    assert rotated.wake.is_set()
    assert hub.open_streams() == 2


def test_terminals_are_told_on_the_outer_commit_not_a_savepoints(engine: Any) -> None:
    """Tracker ingest applies each status in a savepoint: the terminals hear of it when the
    transaction commits (never at the savepoint's release, never for a rollback)."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from geodispatch.dispatch.effects import note_terminal
    from geodispatch.dispatch.publish import publish_after_commit

    heard: list[tuple[set[int], int]] = []

    class Recorder:
        def units_changed(self, unit_ids: Any) -> None:
            with engine.connect() as c:  # what another connection sees at that moment
                seen = c.execute(text("SELECT count(*) FROM pg_stat_activity "
                                      "WHERE state = 'idle in transaction' AND pid = :p"),
                                 {"p": pid}).scalar()
            heard.append((set(unit_ids), int(seen or 0)))

    for outcome in ("commit", "rollback"):
        with Session(engine) as s:
            s.begin()
            pid = s.execute(text("SELECT pg_backend_pid()")).scalar()
            with s.begin_nested():
                note_terminal(s, 7)
                publish_after_commit(s, mqtt=None, fleet=None, terminals=Recorder())
            assert heard == [] or outcome == "rollback"
            s.commit() if outcome == "commit" else s.rollback()
    assert heard == [({7}, 0)], heard  # once, after the commit (no transaction left open)
