"""WordNet 3.0 as Debian ships it (package wordnet-base 1:3.0-37, the Princeton database files),
read straight from the .deb: its synsets with their lemmas, definition and pointers.

The .deb is an `ar` archive whose data.tar.xz holds usr/share/wordnet/data.{noun,verb,adj,adv}
in the wndb(5WN) format: one synset a line,

    offset lex_filenum ss_type w_cnt (word lex_id){w_cnt} p_cnt (symbol offset pos src/tgt){p_cnt}
    [frames] | definition; "example"; "example"

Licence: the WordNet 3.0 licence (Princeton University), which permits use, copying,
modification and distribution for any purpose without fee, with its copyright notice kept.
"""

from __future__ import annotations

import dataclasses
import io
import re
import tarfile
from pathlib import Path

from repro.errors import DataError

DEB_NAME = "wordnet-base_3.0-37_all.deb"
DEB_SHA256 = "61060d960f9ada8fa120872312eccd3ecebfbab8c4579e4f5a74e1cf67620752"  # Debian bookworm's index
DEB_URL = "http://deb.debian.org/debian/pool/main/w/wordnet/" + DEB_NAME
DATA_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
FILE_POS = {"data.noun": "n", "data.verb": "v", "data.adj": "a", "data.adv": "r"}
# hypernym, instance hypernym, hyponym, instance hyponym, similar to (adjective clusters)
RELATED_POINTERS = ("@", "@i", "~", "~i", "&")


@dataclasses.dataclass(frozen=True)
class Synset:
    key: str                  # "<pos><offset>", pos of the data file (satellites are "a")
    lemmas: tuple[str, ...]   # as written, e.g. "Canis_familiaris", "ready_to_hand(p)"
    definition: str           # the gloss before its first quoted example
    related: tuple[str, ...]  # keys of the synsets its RELATED_POINTERS point to, in file order


def ar_members(raw: bytes) -> dict[str, bytes]:
    """The members of an `ar` archive (a .deb) by name."""
    if not raw.startswith(b"!<arch>\n"):
        raise DataError("not an ar archive (a .deb starts with '!<arch>'): the file is corrupt or "
                        "not the package; delete it and fetch it again")
    members, at = {}, 8
    while at + 60 <= len(raw):
        header = raw[at:at + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
        members[name] = raw[at + 60:at + 60 + size]
        at += 60 + size + (size % 2)  # members are 2-byte aligned
    return members


def data_files(raw: bytes) -> dict[str, str]:
    """{data.noun: text, ...} from the .deb's bytes."""
    members = ar_members(raw)
    name = next((m for m in members if m.startswith("data.tar")), None)
    if name is None:
        raise DataError(f"the .deb has no data archive (members: {sorted(members)})")
    out = {}
    with tarfile.open(fileobj=io.BytesIO(members[name])) as tar:
        for member in tar.getmembers():
            base = member.name.rsplit("/", 1)[-1]
            if base in DATA_FILES and "/wordnet/" in member.name:
                out[base] = tar.extractfile(member).read().decode("latin-1")
    missing = [f for f in DATA_FILES if f not in out]
    if missing:
        raise DataError(f"the .deb lacks {missing}: not the wordnet-base package")
    return out


def parse_line(line: str, pos: str) -> Synset:
    head, _, gloss = line.partition(" | ")
    parts = head.split()
    offset, count = parts[0], int(parts[3], 16)
    lemmas = tuple(parts[4 + 2 * i] for i in range(count))
    at = 4 + 2 * count
    related = []
    for i in range(int(parts[at])):
        symbol, target, target_pos = parts[at + 1 + 4 * i:at + 4 + 4 * i]
        if symbol in RELATED_POINTERS:
            related.append(("a" if target_pos == "s" else target_pos) + target)
    definition = re.split(r';\s*"|^"', gloss.strip(), maxsplit=1)[0].strip()
    return Synset(pos + offset, lemmas, definition, tuple(related))


def parse(files: dict[str, str]) -> list[Synset]:
    """Every synset of the four data files, in file order (nouns, verbs, adjectives, adverbs)."""
    synsets = []
    for name in DATA_FILES:
        for number, line in enumerate(files[name].splitlines(), 1):
            if line.startswith("  ") or not line.strip():  # the licence header
                continue
            try:
                synsets.append(parse_line(line, FILE_POS[name]))
            except (ValueError, IndexError) as err:
                raise DataError(f"{name} line {number} is not a wndb synset line ({err}): the file is "
                                "corrupt; delete the .deb and fetch it again") from None
    return synsets


def read_deb(path: Path) -> list[Synset]:
    from repro.data.checksums import sha256_bytes

    if not path.exists():
        raise DataError(f"{path} is missing: put Debian's {DEB_NAME} there (from {DEB_URL}, or "
                        "`apt-get download wordnet-base=1:3.0-37`), or run online")
    raw = path.read_bytes()
    digest = sha256_bytes(raw)
    if digest != DEB_SHA256:
        raise DataError(f"{path} has SHA-256 {digest}, not Debian's {DEB_SHA256}: delete it and fetch "
                        f"{DEB_URL} again")
    return parse(data_files(raw))
