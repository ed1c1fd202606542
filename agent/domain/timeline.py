"""The plant timeline: one visit projection folded from every terminal's events in one order,
whatever order the streams arrive in (docs/replication.md)."""

from __future__ import annotations

import bisect
import itertools
import marshal
import pickle
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from agent.domain.events import Event, pack, unpack
from agent.domain.visit_projection import Projection

OrderKey = tuple[str, str, str, int]
KEEP_TAIL = 4000  # events kept re-foldable after the snapshot; older ones are folded into it
REFOLD_PAGE = 500  # events a refold reads ahead; the tail is cut back to KEEP_TAIL after each
# The tail's newest HOT_TAIL events stay packed one by one (where a late event lands); older ones
# are kept in compressed blocks of COLD_BLOCK (some 30 bytes an event against 300 packed).
HOT_TAIL = 1000
COLD_BLOCK = 500


def order_key(ev: Event) -> OrderKey:
    """Where an event sits in the plant timeline: its UTC time, then its stream and seq.

    Total and the same on every node, so every node folds the same events in the same order.
    """
    return (ev.at, ev.terminal, ev.epoch, ev.seq)


def packed_key(packed: bytes) -> OrderKey:
    """The order key of an event kept by `pack` (its fields as `plain_fields` lists them)."""
    terminal, epoch, seq, _, at = marshal.loads(packed)[:5]
    return (at, terminal, epoch, seq)


class _Block(NamedTuple):
    """A run of the tail's older events, compressed: the `marshal` of their packed bytes."""

    data: bytes
    last: OrderKey  # its newest event's key
    size: int  # how many events it holds

    @staticmethod
    def of(rows: list[bytes]) -> _Block:
        """The block of these packed events (in timeline order)."""
        return _Block(zlib.compress(marshal.dumps(rows), 1), packed_key(rows[-1]), len(rows))

    def rows(self) -> list[bytes]:
        """Its packed events, expanded."""
        rows: list[bytes] = marshal.loads(zlib.decompress(self.data))
        return rows


class _Deflate:
    """A file to pickle into that compresses as it is written, so the whole uncompressed
    pickle is never held."""

    def __init__(self) -> None:
        self.z = zlib.compressobj(1)
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(self.z.compress(data))
        return len(data)

    def close(self) -> bytes:
        self.parts.append(self.z.flush())
        return b"".join(self.parts)


def freeze(p: Projection) -> bytes:
    """A projection as a compressed pickle: what a snapshot is kept as between uses."""
    out = _Deflate()
    pickle.dump(p, out, pickle.HIGHEST_PROTOCOL)
    return out.close()


def thaw(frozen: bytes) -> Projection:
    """The projection `freeze` kept (a new object each time)."""
    p = pickle.loads(zlib.decompress(frozen))
    assert isinstance(p, Projection)
    return p


class Timeline:
    """A projection over events that may arrive out of order.

    Events after the newest one folded are applied at once. An event that sorts earlier is
    inserted and the tail after the snapshot is folded again (like Autobase's undo and
    reapply); one earlier than the snapshot asks for a refold of everything (`stale`), which
    the caller does with `refold`. The result equals `fold(sorted(events))`.

    The snapshot is read only by a replay and by a compaction, so it is kept frozen (`freeze`):
    0.14 MiB after ten busy days, where its objects took 5 MiB beside the live projection's.
    For the same reason the tail keeps its events packed (`pack`, some 300 bytes a busy
    plant's event against 700 as objects), unpacked for a replay or a compaction; the live
    projection holds the objects of the events it needs. Only the newest `hot` stay packed one
    by one; the older ones are compressed a block at a time. A replay or a compaction expands
    one block at a time, and an event that sorts among them is put into its block, so the
    whole tail is never held expanded.
    """

    def __init__(
        self,
        make: Callable[[], Projection],
        keep: int = KEEP_TAIL,
        hot: int = HOT_TAIL,
        block: int = COLD_BLOCK,
    ) -> None:
        self.make = make
        self.keep, self.hot, self.block = keep, hot, min(block, hot)
        self.frozen = freeze(make())
        self.base_key: OrderKey | None = None
        self.building: Projection | None = None  # the snapshot while a refold makes it
        self.cold: list[_Block] = []  # the tail's oldest events, compressed a block at a time
        self.tail: list[bytes] = []  # the newest, packed, in order (keys read when needed)
        self.last_key: OrderKey | None = None  # the tail's last event's
        self.proj = make()
        self.stale = False
        self.replays = 0

    def add(self, events: Iterable[Event]) -> bool:
        """Fold events in (ones already folded are ignored); return whether anything changed.

        Sets `stale` when an event sorts before the snapshot.
        """
        changed = replay = False
        added: dict[str, Event] = {}
        for ev in sorted(events, key=order_key):
            k = order_key(ev)
            i = len(self.tail)
            last = self.last_key is None or k > self.last_key
            cold = not last and bool(self.cold) and k <= self.cold[-1].last
            if cold:
                # the block it sorts into
                j = bisect.bisect_left(self.cold, k, key=lambda b: b.last)
                rows = self.cold[j].rows()
                i = bisect.bisect_left(rows, k, key=packed_key)
                if i < len(rows) and packed_key(rows[i]) == k:
                    continue  # an event's key names it: this one, folded already
            elif not last:
                i = bisect.bisect_left(self.tail, k, key=packed_key)
                if i < len(self.tail) and packed_key(self.tail[i]) == k:
                    continue
            if self.base_key is not None and k <= self.base_key:
                self.stale = True
                continue
            changed = True
            if cold:
                rows.insert(i, pack(ev))
                self.cold[j] = _Block.of(rows)
            else:
                self.tail.insert(i, pack(ev))
            if last:
                self.last_key = k
            if self.building is not None:
                continue  # a refold folds the tail once, at its end
            replay = replay or not last
            if replay:
                added[ev.id] = ev  # folded by the replay below
            else:
                self.proj.apply(ev)
        if replay:
            self._replay(added)
        self._compact()
        self._cool()
        return changed

    def _replay(self, added: dict[str, Event]) -> None:
        """Fold the tail again onto the snapshot, after an event sorted inside it (`added`: the
        events of this call, by id).

        Of the live projection only what the new one takes is kept while it is folded: the
        objects of its visits' events (folded again as they are) and the packers' live totals.
        The rest of it goes first, so the two are never held side by side: the high-water mark
        of a daemon's heap, which its RSS keeps.
        """
        self.replays += 1
        known = {ev.id: ev for v in self.proj.visits.values() for _, ev in v.events}
        known.update(added)
        loaded = self.proj.loaded
        self.proj = self.make()  # empty while folding: nothing reads it meanwhile
        try:
            fresh = self.base
            fresh.loaded = loaded
            for ev in self.tail_events():
                fresh.apply(known.get(ev.id, ev))
        except BaseException:
            self.stale = True  # the live projection is gone: the caller refolds from the store
            raise
        self.proj = fresh

    @property
    def tail_size(self) -> int:
        """How many events the tail holds."""
        return sum(b.size for b in self.cold) + len(self.tail)

    def tail_events(self) -> Iterator[Event]:
        """The tail's events, unpacked (new objects), in timeline order."""
        cold = (p for block in self.cold for p in block.rows())
        return map(unpack, itertools.chain(cold, self.tail))

    def _cool(self) -> None:
        """Compress the oldest packed events a block at a time while more than `hot` are
        packed one by one."""
        while len(self.tail) > self.hot:
            self.cold.append(_Block.of(self.tail[: self.block]))
            del self.tail[: self.block]

    def _oldest(self, n: int) -> Iterator[bytes]:
        """The tail's oldest `n` events, packed, expanding one block at a time."""
        for block in self.cold:
            if n <= 0:
                return
            yield from block.rows()[:n]
            n -= block.size
        yield from self.tail[: max(n, 0)]

    def _drop_oldest(self, n: int) -> None:
        """Take the tail's oldest `n` events out of it (folded into the snapshot)."""
        while n > 0 and self.cold:
            block = self.cold[0]
            if block.size > n:  # the cut ends inside this block: the rest stays compressed
                self.cold[0] = _Block.of(block.rows()[n:])
                return
            del self.cold[0]
            n -= block.size
        del self.tail[:n]

    def refold(self, events: Iterable[Event]) -> None:
        """Start again from every event (the whole stored timeline), given in timeline order.

        Read a page of `REFOLD_PAGE` events at a time into the tail, the snapshot folding the
        older ones as it goes (as objects, frozen once at the end), so a long history is never
        held whole and the tail never grows past `keep` and a page. The live projection is
        made once, at the end: the snapshot thawed, with what its events left to react to,
        and the tail folded on it: one projection is held while reading, not two. Events out
        of order are still folded right as long as none sorts before the snapshot; one that
        does leaves `stale` set.
        """
        loaded = self.proj.loaded
        self.base_key = None
        building = self.building = self.make()  # frozen once at the end, not at each page
        self.tail, self.last_key = [], None
        self.cold = []
        self.proj = self.make()  # an empty one while reading: nothing reads it meanwhile
        self.stale = False
        page: list[Event] = []
        try:
            for ev in events:
                page.append(ev)
                if len(page) >= REFOLD_PAGE:
                    self.add(page)
                    self._compact(self.keep + REFOLD_PAGE)
                    page = []
            self.add(page)
            self._compact(self.keep + REFOLD_PAGE)
        finally:
            # what the events left to react to (their own checks, captures to match) belongs
            # to the live projection, not to the snapshot that replays start from
            dirty, pending = building.dirty, building.pending_auto
            building.dirty, building.pending_auto = set(), type(pending)()
            self.frozen, self.building = freeze(building), None
            del building
        live = self.base
        live.loaded, live.dirty, live.pending_auto = loaded, dirty, pending
        for ev in self.tail_events():
            live.apply(ev)
        self.proj = live

    @property
    def base(self) -> Projection:
        """The snapshot: what the events up to `base_key` fold to (a new copy at each use)."""
        return thaw(self.frozen)

    def _compact(self, most: int | None = None) -> None:
        """Fold the oldest tail events into the snapshot, leaving `keep`, once the tail holds
        more than `most` (default: twice `keep`).

        The events cut are expanded one compressed block at a time, and taken out of the tail
        only once the snapshot has folded them all.
        """
        if self.tail_size <= (2 * self.keep if most is None else most):
            return
        cut = self.tail_size - self.keep
        base = self.base if self.building is None else self.building
        last = b""
        for last in self._oldest(cut):
            base.apply(unpack(last))  # anything that old is caught by base_key from now on
        if self.building is None:  # a refold's are handed to the live projection at its end
            base.dirty.clear()
            base.pending_auto.clear()
            self.frozen = freeze(base)
        self.base_key = packed_key(last)
        self._drop_oldest(cut)


def fold(events: Iterable[Event], make: Callable[[], Projection]) -> Projection:
    """The projection of a set of events in timeline order (the reference for `Timeline`)."""
    p = make()
    for ev in sorted({e.id: e for e in events}.values(), key=order_key):
        p.apply(ev)
    return p
