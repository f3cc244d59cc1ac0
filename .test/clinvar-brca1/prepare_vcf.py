"""Make tests/data/realdata/clinvar_brca1_splice.vcf.gz from tests/data/realdata/clinvar_brca1_grch38.vcf.

Keeps the header and every record whose molecular consequence (INFO/MC, ``SO:id|name`` entries)
includes a splice, intron or synonymous one, where pathogenicity mostly goes through splicing;
records are kept verbatim (CLNSIG and all other INFO fields). Written with gzip at mtime 0, so the
output is the same bytes on every run:

    python .test/clinvar-brca1/prepare_vcf.py
"""

import gzip
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests/data/realdata/clinvar_brca1_grch38.vcf"
OUTPUT = ROOT / "tests/data/realdata/clinvar_brca1_splice.vcf.gz"
CONSEQUENCES = {
    "splice_donor_variant",
    "splice_acceptor_variant",
    "splice_region_variant",
    "intron_variant",
    "synonymous_variant",
}


def consequences(info: str) -> set[str]:
    for field in info.split(";"):
        key, _, value = field.partition("=")
        if key == "MC":
            return {entry.split("|")[-1] for entry in value.split(",")}
    return set()


def main() -> int:
    kept = total = 0
    lines = []
    for line in SOURCE.read_text().splitlines(keepends=True):
        if line.startswith("#"):
            lines.append(line)
            continue
        total += 1
        if consequences(line.split("\t")[7]) & CONSEQUENCES:
            lines.append(line)
            kept += 1
    with open(OUTPUT, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as out:
        out.write("".join(lines).encode())
    print(f"{OUTPUT.relative_to(ROOT)}: {kept} of {total} records", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
