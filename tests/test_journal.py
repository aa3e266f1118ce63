"""FillJournal under the conditions that lose data in practice: two processes, kill -9, locks and damaged files."""
import hashlib, multiprocessing as mp, os, signal, sqlite3, subprocess, sys, textwrap, time
from datetime import datetime, timedelta, timezone
from pathlib import Path
import pytest
from hydra_nb.core import StateDBError, open_state_db, transaction
from hydra_nb.journal import FillJournal

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=timezone.utc)


def fill(i, **kw):
    d = dict(exec_id=f"0001f4e5.{i:06d}.01", time=T0 + timedelta(seconds=i), symbol="ZO", side="BUY" if i % 2 else "SELL",
             quantity=1 + i % 4, price=350.0 + 0.25 * (i % 7), arrival_mid=350.5, spread=0.25, adv=1500, daily_vol=6.0,
             tick_size=0.25, order_id=i // 3, order_ref=f"hydra:ZO:{i // 3}", perm_id=10_000 + i // 3, con_id=12087792)
    d.update(kw)
    return d


def sha(p):
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def _writer(path, ids, start, out):
    j = FillJournal(path, timeout=30)
    start.wait()
    new = 0
    for k in range(0, len(ids), 50):                    # alternate batches and single inserts
        chunk = ids[k:k + 50]
        if (k // 50) % 2: new += sum(j.record_fill(fill(i)) for i in chunk)
        else: new += j.record_fills([fill(i) for i in chunk])
    j.close()
    out.put(new)


def test_two_processes_overlapping_exec_ids_give_exactly_the_union(tmp_path):
    ctx = mp.get_context("spawn")
    FillJournal(tmp_path).close()                       # create the schema once, so both start on the same file
    a, b = list(range(0, 3000)), list(range(1500, 4500))
    start, out = ctx.Event(), ctx.Queue()
    ps = [ctx.Process(target=_writer, args=(str(tmp_path), ids, start, out)) for ids in (a, b)]
    for p in ps: p.start()
    time.sleep(0.5)
    start.set()
    news = [out.get(timeout=60) for _ in ps]
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    with FillJournal(tmp_path) as j:
        assert j.exec_ids() == {fill(i)["exec_id"] for i in range(4500)}
        assert len(j) == 4500
        assert sum(news) == 4500 and min(news) >= 1500        # each new exactly once, across processes
        assert j.fills().exec_id.is_unique


KILL = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from test_journal import fill
    from hydra_nb.journal import FillJournal
    j = FillJournal({path!r})
    assert j.record_fill(fill(0))
    assert j.record_fills([fill(i) for i in range(1, 200)]) == 199
    j.attach_commission(fill(5)["exec_id"], 2.35, "USD")
    print("written", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_fill_written_before_kill_9_survives(tmp_path):
    code = KILL.format(tests=str(Path(__file__).parent), path=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == -signal.SIGKILL and r.stdout.strip() == "written", r.stderr
    assert (tmp_path / "hydra.db-wal").stat().st_size > 0  # never checkpointed: the data is only in the WAL
    with FillJournal(tmp_path) as j:
        f = j.fills()
        assert len(f) == 200
        assert f.set_index("exec_id").loc[fill(5)["exec_id"], "commission"] == 2.35


LOCKER = textwrap.dedent("""
    import sqlite3, sys, time
    c = sqlite3.connect({path!r}, isolation_level=None)
    c.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(60)
""")


def test_locked_database_is_a_clear_error_and_nothing_is_lost(tmp_path):
    with FillJournal(tmp_path) as j0: j0.record_fills([fill(i) for i in range(10)])
    db = tmp_path / "hydra.db"
    j = FillJournal(tmp_path, timeout=0.3)              # opened before the lock
    locker = subprocess.Popen([sys.executable, "-c", LOCKER.format(path=str(db))], stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        before = sha(db)
        with pytest.raises(StateDBError, match="locked by another process"):
            FillJournal(tmp_path, timeout=0.3)
        with pytest.raises(StateDBError, match="locked by another process"):
            j.record_fill(fill(10))
        with pytest.raises(StateDBError, match="locked by another process"):
            j.attach_commission(fill(1)["exec_id"], 1.0, "USD")
        assert sha(db) == before
        assert len(j.fills()) == 10                     # WAL: reading is not blocked by the writer's lock
    finally:
        locker.kill(); locker.wait()
    assert j.record_fill(fill(10)) is True              # the caller retries once the lock is gone
    assert len(j) == 11
    j.close()


def _hydra_db_with_fills(d, n=500):
    with FillJournal(d) as j: j.record_fills([fill(i) for i in range(n)])
    return Path(d) / "hydra.db"


def damage_pages(p):
    b = bytearray(p.read_bytes()); b[2 * 4096:5 * 4096] = b"\xde\xad" * (3 * 2048); p.write_bytes(bytes(b))


def truncate(p):
    p.write_bytes(p.read_bytes()[:3000])


def garbage(p):
    p.write_bytes(b"\x00\x01garbage" * 1000)


def foreign(p):
    p.unlink()
    c = sqlite3.connect(p); c.execute("CREATE TABLE fills(id INTEGER, px REAL)"); c.execute("INSERT INTO fills VALUES (1, 2.0)")
    c.commit(); c.close()


def too_new(p):
    c = open_state_db(p)
    with transaction(c): c.execute("UPDATE hydra_schema SET version = 99 WHERE component = 'journal'")
    c.close()


@pytest.mark.parametrize("spoil,msg", [(damage_pages, "corrupt"), (truncate, "corrupt"), (garbage, "not a SQLite database"),
                                       (foreign, "another application"), (too_new, "schema version 99")])
def test_bad_database_files_are_refused_and_left_byte_for_byte(tmp_path, spoil, msg):
    p = _hydra_db_with_fills(tmp_path)
    spoil(p)
    before = sha(p)
    with pytest.raises(StateDBError, match=msg) as e:
        FillJournal(tmp_path)
    assert str(p) in str(e.value)
    assert sha(p) == before
