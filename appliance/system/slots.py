"""A/B root slots and systemd-boot boot counting: pure decisions, no I/O.

The box has two root slots (``a``, ``b``); each has one Boot Loader Specification type #1
entry on the ESP, ``/loader/entries/plateau-<slot>[+<left>[-<done>]].conf``. An update
writes the slot we are *not* running, gives its entry ``+1`` tries, and lets
systemd-boot's automatic boot assessment do the rest (systemd.io/AUTOMATIC_BOOT_ASSESSMENT):
systemd-boot renames ``+1`` to ``+0-1`` when it boots the entry, ``systemd-bless-boot``
drops the counter once ``boot-complete.target`` is reached (our health check), and an
entry with no tries left sorts last, so the next boot falls back to the previous slot.

``boot_order`` mirrors systemd-boot 252's entry ordering (``config_entry_compare`` and
``config_default_entry_select`` in src/boot/efi/boot.c, ``strverscmp_improved`` in
src/fundamental/string-util-fundamental.c). One consequence shapes the entry files:
without a ``sort-key`` line systemd-boot orders by file name only, descending, so
``plateau-b*.conf`` would always beat ``plateau-a*.conf`` whatever their versions. Our
entries therefore carry ``sort-key plateau``: entries with a sort key are ordered by
version, newest first, as the design wants.

Everything here takes strings and records and returns records; appliance/system/update.py
does the reading and writing.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ENTRY_PREFIX = "plateau-"
ENTRY_SUFFIX = ".conf"
SORT_KEY = "plateau"
# A freshly written slot gets one try: if that boot does not reach boot-complete.target,
# the entry has +0 left and sorts last (boot.c: "Order entries that have no tries left
# to the end of the list").
NEW_SLOT_TRIES = 1
CMDLINE_KEY = "plateau.slot"


class Slot(enum.StrEnum):
    """A root slot; the value is the letter used in partition labels and entry names."""

    A = "a"
    B = "b"

    @property
    def other(self) -> Slot:
        """The other slot (the one an update writes when this one runs)."""
        return Slot.B if self is Slot.A else Slot.A


class Assessment(enum.StrEnum):
    """Boot assessment state of an entry (systemd.io/AUTOMATIC_BOOT_ASSESSMENT)."""

    GOOD = "good"                  # no counter: blessed, or never counted
    INDETERMINATE = "indeterminate"  # counter with tries left: not yet proven
    BAD = "bad"                    # counter with 0 tries left


@dataclass(frozen=True)
class EntryName:
    """What a loader entry's file name says (boot counting grammar ``<id>+<left>[-<done>].conf``)."""

    file_name: str
    slot: Slot | None  # None: not one of ours (another OS, a technician's entry)
    tries_left: int | None  # None: no boot counter
    tries_done: int | None

    @property
    def assessment(self) -> Assessment:
        if self.tries_left is None:
            return Assessment.GOOD
        return Assessment.BAD if self.tries_left == 0 else Assessment.INDETERMINATE


@dataclass(frozen=True)
class BootEntry:
    """A type #1 loader entry: its name and the keys systemd-boot sorts by."""

    name: EntryName
    version: str | None = None
    sort_key: str | None = None
    machine_id: str | None = None
    title: str | None = None

    @property
    def file_name(self) -> str:
        return self.name.file_name

    @property
    def slot(self) -> Slot | None:
        return self.name.slot

    @property
    def assessment(self) -> Assessment:
        return self.name.assessment


@dataclass(frozen=True)
class Pending:
    """The update written but not yet confirmed or rolled back (state.json ``pending``)."""

    slot: Slot
    version: str
    from_slot: Slot
    from_version: str | None
    db_snapshot: str | None
    written_at: str


@dataclass(frozen=True)
class EntryFile:
    """A loader entry to write: file name (under loader/entries/) and contents."""

    file_name: str
    text: str


@dataclass(frozen=True)
class UpdatePlan:
    """What `plateau update` writes: the target slot, its new entry, the entries to remove."""

    slot: Slot
    from_slot: Slot
    from_version: str | None
    entry: EntryFile
    stale_entries: tuple[str, ...]


class UpdateRefused(ValueError):
    """An update must not be written now (the message says why, for the CLI)."""


class Outcome(enum.StrEnum):
    """What the boot after an update means for it."""

    CONFIRMED = "confirmed"      # the pending slot runs and its entry is blessed
    ROLLED_BACK = "rolled-back"  # the previous slot runs and the pending slot's entry is bad
    IN_PROGRESS = "in-progress"  # the pending slot runs but is not blessed yet
    NOTHING = "nothing"          # no update pending, or nothing to conclude yet


@dataclass(frozen=True)
class AfterBoot:
    """The after-boot decision: the outcome, whether to restore the DB snapshot, and why."""

    outcome: Outcome
    restore_snapshot: bool
    reason: str


# -- names and contents --------------------------------------------------------------------

def parse_counter(file_name: str) -> tuple[str, int | None, int | None]:
    """Split ``<id>+<left>[-<done>].conf`` into (``<id>``, left, done), as systemd-boot does.

    boot.c ``config_entry_parse_tries``: the counter follows the *last* ``+``, ``-<done>``
    is optional (meaning 0), and anything between the counter and ``.conf`` makes it not a
    counter at all (then the whole stem is the id and there is no counter).
    """
    if not file_name.lower().endswith(ENTRY_SUFFIX):
        raise ValueError(f"{file_name!r} is not a loader entry (*.conf)")
    stem = file_name[: -len(ENTRY_SUFFIX)]
    base, plus, counter = stem.rpartition("+")
    if not plus:
        return stem, None, None
    m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", counter)
    if m is None or int(m.group(1)) > 2**31 - 1 or int(m.group(2) or 0) > 2**31 - 1:
        return stem, None, None
    return base, int(m.group(1)), int(m.group(2) or 0)


def parse_entry_name(file_name: str) -> EntryName:
    """Parse a loader entry's file name; ``slot`` is None for entries that are not ours."""
    base, left, done = parse_counter(file_name)
    slot: Slot | None = None
    if base.startswith(ENTRY_PREFIX):
        try:
            slot = Slot(base[len(ENTRY_PREFIX):])
        except ValueError:
            slot = None
    return EntryName(file_name, slot, left, done)


def parse_entry(file_name: str, text: str) -> BootEntry:
    """A loader entry from its file name and contents (``key value`` lines, ``#`` comments)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        if key not in fields:
            fields[key] = value.strip()
        elif key in ("title", "version", "sort-key", "machine-id"):
            fields[key] = value.strip()  # boot.c: a repeated key replaces the earlier one
    return BootEntry(parse_entry_name(file_name), version=fields.get("version"),
                     sort_key=fields.get("sort-key"), machine_id=fields.get("machine-id"),
                     title=fields.get("title"))


def entry_file_name(slot: Slot, tries_left: int | None = NEW_SLOT_TRIES) -> str:
    """``plateau-b+1.conf`` (with a counter) or ``plateau-b.conf`` (``tries_left=None``)."""
    counter = "" if tries_left is None else f"+{tries_left}"
    return f"{ENTRY_PREFIX}{slot.value}{counter}{ENTRY_SUFFIX}"


def entry_text(slot: Slot, version: str) -> str:
    """The entry file of a slot, the same as image/build writes for slot a (image/README.md).

    ``console=ttyS0`` comes last so the serial port is /dev/console (image/README.md).
    """
    if not version or any(c.isspace() for c in version):
        raise ValueError(f"version {version!r} must be non-empty without spaces")
    return (
        f"title Plateau {version} (slot {slot.value})\n"
        f"sort-key {SORT_KEY}\n"
        f"version {version}\n"
        f"linux /plateau/{slot.value}/vmlinuz\n"
        f"initrd /plateau/{slot.value}/initrd.img\n"
        f"options root=PARTLABEL=plateau-root-{slot.value} ro {CMDLINE_KEY}={slot.value} "
        "panic=10 console=tty0 console=ttyS0,115200\n"
    )


def running_slot(cmdline: str) -> Slot | None:
    """The slot named by ``plateau.slot=`` on the kernel command line (the last one wins)."""
    found: Slot | None = None
    for word in cmdline.split():
        key, eq, value = word.partition("=")
        if key == CMDLINE_KEY and eq:
            try:
                found = Slot(value)
            except ValueError:
                found = None
    return found


# -- systemd-boot's order -------------------------------------------------------------------

def _is_version_char(c: str) -> bool:
    return _is_digit(c) or _is_alpha(c) or c in "~-^."


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


def _is_alpha(c: str) -> bool:
    return "a" <= c <= "z" or "A" <= c <= "Z"


def _cmp(x: object, y: object) -> int:
    return (x > y) - (x < y)  # type: ignore[operator]


def strverscmp_improved(a: str | None, b: str | None) -> int:
    """Compare version strings like systemd's ``strverscmp_improved`` (-1, 0, 1).

    src/fundamental/string-util-fundamental.c: segments are numeric or alphabetic;
    ``~`` marks the oldest (pre-release), ``-`` a release, ``^`` a patch, ``.`` a point
    release; numbers compare by value, a string with more segments is newer.
    """
    if not a or not b:
        # strcmp_ptr(): NULL sorts before anything, "" before a non-empty string.
        if a is None or b is None:
            return _cmp(a is not None, b is not None)
        return _cmp(a, b)
    sa, sb = a + "\0", b + "\0"
    i = j = 0
    while True:
        while sa[i] != "\0" and not _is_version_char(sa[i]):
            i += 1
        while sb[j] != "\0" and not _is_version_char(sb[j]):
            j += 1
        if sa[i] == "~" or sb[j] == "~":
            r = _cmp(sa[i] != "~", sb[j] != "~")
            if r:
                return r
            i, j = i + 1, j + 1
        if sa[i] == "\0" or sb[j] == "\0":
            return _cmp(sa[i], sb[j])
        for mark in "-^.":
            if sa[i] == mark or sb[j] == mark:
                r = _cmp(sa[i] != mark, sb[j] != mark)
                if r:
                    return r
                i, j = i + 1, j + 1
        if _is_digit(sa[i]) or _is_digit(sb[j]):
            while sa[i] == "0":
                i += 1
            while sb[j] == "0":
                j += 1
            ii, jj = i, j
            while _is_digit(sa[ii]):
                ii += 1
            while _is_digit(sb[jj]):
                jj += 1
            r = _cmp(ii - i, jj - j) or _cmp(sa[i:ii], sb[j:jj])
            if r:
                return r
        else:
            ii, jj = i, j
            while _is_alpha(sa[ii]):
                ii += 1
            while _is_alpha(sb[jj]):
                jj += 1
            n = min(ii - i, jj - j)
            r = _cmp(sa[i:i + n], sb[j:j + n]) or _cmp(ii - i, jj - j)
            if r:
                return r
        i, j = ii, jj


def _entry_compare(a: BootEntry, b: BootEntry) -> int:
    """boot.c ``config_entry_compare`` (systemd 252) on two entries."""
    left_a, left_b = a.name.tries_left, b.name.tries_left
    # "Order entries that have no tries left to the end of the list"
    r = _cmp(left_a == 0, left_b == 0)
    if r:
        return r
    # Entries with a sort key before those without; among them sort-key, machine-id,
    # then version downwards (newest first).
    r = _cmp(a.sort_key is None, b.sort_key is None)
    if r:
        return r
    if a.sort_key is not None and b.sort_key is not None:
        r = _cmp(a.sort_key, b.sort_key)
        if r:
            return r
        # strcmp16() on possibly-NULL strings: a missing machine-id sorts first.
        if a.machine_id is None or b.machine_id is None:
            r = _cmp(a.machine_id is not None, b.machine_id is not None)
        else:
            r = _cmp(a.machine_id, b.machine_id)
        if r:
            return r
        r = -strverscmp_improved(a.version, b.version)
        if r:
            return r
    # Then by id (the lower-cased file name, counter included), downwards.
    r = -strverscmp_improved(a.file_name.lower(), b.file_name.lower())
    if r:
        return r
    if left_a is None or left_b is None:
        return 0
    r = -_cmp(left_a, left_b)
    if r:
        return r
    return _cmp(a.name.tries_done, b.name.tries_done)


def boot_order(entries: Iterable[BootEntry]) -> list[BootEntry]:
    """The entries in systemd-boot 252's menu order; the first is the one it boots.

    Mirrors src/boot/efi/boot.c (v252): ``config_entry_compare`` sorts entries with no
    tries left last, then entries with a ``sort-key`` before those without, then by
    sort-key, machine-id and ``version`` (newest first), then by id (file name) downwards;
    ``config_default_entry_select`` then takes the first entry, since our loader.conf has
    no ``default`` line and we set no LoaderEntryDefault/LoaderEntryOneShot EFI variable
    (either would override this order).
    """
    return sorted(entries, key=functools.cmp_to_key(_entry_compare))


def slot_entries(entries: Iterable[BootEntry], slot: Slot) -> list[BootEntry]:
    """The entries of one slot (normally one; more after an interrupted write)."""
    return [e for e in entries if e.slot is slot]


def slot_entry(entries: Sequence[BootEntry], slot: Slot) -> BootEntry | None:
    """The slot's entry systemd-boot would consider first, or None."""
    ordered = boot_order(slot_entries(entries, slot))
    return ordered[0] if ordered else None


# -- writing an update ------------------------------------------------------------------------

def plan_update(running: Slot | None, pending: Pending | None, entries: Sequence[BootEntry],
                new_version: str) -> UpdatePlan:
    """Decide where an update goes, or raise UpdateRefused.

    The target is the slot we are not running. Refused when the running slot is unknown
    (writing "the other one" could be the live root), when an earlier update is still
    pending (its outcome is not known yet; writing over it would lose the rollback
    target), and when systemd-boot would not pick the new entry (its version is not
    newer than the running slot's, see ``boot_order``).
    """
    if running is None:
        raise UpdateRefused(
            f"the running slot is unknown ({CMDLINE_KEY}= is not on the kernel command line); "
            "refusing to guess which slot is free")
    if pending is not None:
        raise UpdateRefused(
            f"update {pending.version} to slot {pending.slot.value} is still pending "
            "(not confirmed nor rolled back): reboot into it first, "
            "and check `plateau update --status`")
    target = running.other
    new = EntryFile(entry_file_name(target), entry_text(target, new_version))
    current = slot_entry(entries, running)
    stale = tuple(sorted(e.file_name for e in slot_entries(entries, target)))
    after = [e for e in entries if e.slot is not target]
    candidate = parse_entry(new.file_name, new.text)
    first = boot_order([*after, candidate])[0]
    if first != candidate:
        raise UpdateRefused(
            f"systemd-boot would not boot version {new_version}: entry {first.file_name} "
            f"(version {first.version}) sorts first; an update must be newer than the running "
            "version")
    return UpdatePlan(target, running, current.version if current else None, new, stale)


# -- after boot -------------------------------------------------------------------------------

def decide_after_boot(pending: Pending | None, running: Slot | None, entries: Sequence[BootEntry],
                      db_schema: int | None, software_schema: int) -> AfterBoot:
    """What this boot says about the pending update (runs before the engine starts).

    ``db_schema`` is the database's schema version (None: no database yet),
    ``software_schema`` the number of migrations this software knows. A rollback
    restores the pre-update snapshot only when the database was migrated beyond what
    this software can open (appliance/store/db.py refuses a newer schema); otherwise
    the data written since the update is kept.
    """
    if pending is None:
        return AfterBoot(Outcome.NOTHING, False, "no update pending")
    if running is None:
        return AfterBoot(Outcome.NOTHING, False, "running slot unknown; nothing decided")
    entry = slot_entry(entries, pending.slot)
    if running is pending.slot:
        if entry is not None and entry.assessment is Assessment.GOOD:
            return AfterBoot(Outcome.CONFIRMED, False,
                             f"slot {running.value} runs {pending.version} and its entry is blessed")
        where = entry.file_name if entry else "no entry"
        return AfterBoot(Outcome.IN_PROGRESS, False,
                         f"slot {running.value} runs {pending.version}, not blessed yet ({where})")
    if running is not pending.from_slot:
        return AfterBoot(Outcome.NOTHING, False, f"pending record names slot {pending.slot.value} "
                         f"from {pending.from_slot.value}; running {running.value}")
    too_new = db_schema is not None and db_schema > software_schema
    if entry is None:
        return AfterBoot(Outcome.ROLLED_BACK, too_new,
                         f"slot {pending.slot.value} has no boot entry left; running {running.value}")
    if entry.assessment is Assessment.BAD:
        return AfterBoot(Outcome.ROLLED_BACK, too_new,
                         f"slot {pending.slot.value} ({pending.version}) failed its boot "
                         f"({entry.file_name}); back on slot {running.value}")
    if entry.assessment is Assessment.GOOD:
        # It was blessed on an earlier boot and someone picked the old slot in the menu:
        # the update itself proved healthy.
        return AfterBoot(Outcome.CONFIRMED, False,
                         f"slot {pending.slot.value} was blessed; slot {running.value} "
                         "was chosen by hand this boot")
    return AfterBoot(Outcome.NOTHING, False,
                     f"slot {pending.slot.value} not tried yet ({entry.file_name}); "
                     "it will be on the next boot")
