"""Genes and annotated splice sites as Pangolin sees them.

Pangolin scores a variant once per strand on which a gene body contains POS, and masks each gene's
scores with the start and end of every exon of that gene (1-based, inclusive). Three sources give
the same look-up:

- :class:`GffutilsGenes`: the official gffutils database, read exactly as the official command line
  reads it (``region`` query at POS - 1, genes whose start..end contain POS, exon children in the
  database's order, gene id = the ``gene_id`` attribute);
- :func:`create_db`: that database built from a GTF the way the official ``scripts/create_db.py``
  builds it (gene, transcript and exon features; transcripts and exons kept only when tagged with
  one of ``tags``, ``Ensembl_canonical`` by default);
- :class:`TableGenes`: the pipeline's SpliceAI-format gene table (one transcript per row), so that
  every dataset, the demo included, gets Pangolin without a GTF. Gene id = the table's ``#NAME``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # pandas is imported only for the SpliceAI-table route
    from metasplice.data.annotation import Annotation

CANONICAL_TAG = "Ensembl_canonical"
KEPT_FEATURES = ("gene", "transcript", "exon")


class GeneLookup(Protocol):
    """Genes containing a position, per strand: ``{gene_id: [exon_start, exon_end, ...]}`` in order."""

    def genes_at(self, chrom: str, pos: int) -> tuple[dict[str, list[int]], dict[str, list[int]]]: ...


class GffutilsGenes:
    """The official annotation: a gffutils sqlite database (e.g. made by :func:`create_db`)."""

    def __init__(self, path: str | Path) -> None:
        import gffutils

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"Pangolin annotation not found: {self.path} (a gffutils database; build one from a "
                "GTF with `metasplice pangolin-db GTF`)"
            )
        try:
            self.db = gffutils.FeatureDB(str(self.path))
            self.db.execute("SELECT 1 FROM features LIMIT 1")
        except Exception as exc:
            raise ValueError(f"{self.path}: cannot be opened as a gffutils database ({exc}); is it one?") from exc

    def genes_at(self, chrom: str, pos: int) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        plus: dict[str, list[int]] = {}
        minus: dict[str, list[int]] = {}
        for gene in self.db.region((chrom, pos - 1, pos - 1), featuretype="gene"):
            if gene.start > pos or gene.end < pos:
                continue
            exons: list[int] = []
            for exon in self.db.children(gene, featuretype="exon"):
                exons.extend([exon.start, exon.end])
            if gene.strand == "+":
                plus[gene["gene_id"][0]] = exons
            elif gene.strand == "-":
                minus[gene["gene_id"][0]] = exons
        return plus, minus


class TableGenes:
    """The same look-up from a SpliceAI-format gene table: each row a gene with one transcript.

    Exons come in genome order; a gffutils database returns them in its own stored order, which
    changes nothing but the order of ``--score_exons`` entries."""

    def __init__(self, annotation: Annotation) -> None:
        self.annotation = annotation

    def genes_at(self, chrom: str, pos: int) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        plus: dict[str, list[int]] = {}
        minus: dict[str, list[int]] = {}
        genes = self.annotation.genes
        for row in self.annotation.overlapping(chrom, pos):
            g = genes.iloc[row]
            exons: list[int] = []
            for start, end in zip(g["exon_starts"], g["exon_ends"], strict=True):  # 1-based, inclusive
                exons.extend([int(start), int(end)])
            (plus if g["strand"] == "+" else minus)[str(g["name"])] = exons
        return plus, minus


def _keep(tags: Sequence[str] | None):
    def keep(feature):
        if feature.featuretype not in KEPT_FEATURES:
            return False
        if tags and feature.featuretype in ("transcript", "exon"):
            present = feature.attributes.get("tag", [])
            if not any(tag in present for tag in tags):
                return False
        return feature

    return keep


def create_db(gtf: str | Path, db: str | Path, tags: Sequence[str] | None = (CANONICAL_TAG,)) -> Path:
    """Build the gffutils database the official ``create_db.py`` builds from ``gtf`` (``tags`` None or
    empty: keep every transcript and exon). Written to a temporary name and renamed when complete."""
    import gffutils

    gtf, db = Path(gtf), Path(db)
    if not gtf.is_file():
        raise FileNotFoundError(f"GTF not found: {gtf}")
    part = db.with_name(db.name + ".part")
    part.unlink(missing_ok=True)
    try:
        gffutils.create_db(
            str(gtf),
            str(part),
            force=True,
            disable_infer_genes=True,
            disable_infer_transcripts=True,
            transform=_keep(list(tags or ())),
        )
        part.replace(db)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return db


def load_genes(source: str | Path | Annotation) -> GeneLookup:
    """A gene look-up from a gffutils database (``.db``), a GTF (built into a database beside it
    first), a SpliceAI-format table path, or a loaded :class:`Annotation`."""
    if not isinstance(source, (str, Path)):  # a loaded Annotation
        return TableGenes(source)
    path = Path(source)
    name = path.name.lower()
    if name.endswith((".gtf", ".gtf.gz")):
        db = path.with_name(name.removesuffix(".gz").removesuffix(".gtf") + ".db")
        if not db.is_file() or db.stat().st_mtime < path.stat().st_mtime:
            create_db(path, db)
        return GffutilsGenes(db)
    if name.endswith((".db", ".sqlite", ".sqlite3")):
        return GffutilsGenes(path)
    from metasplice.data.annotation import load_annotation

    return TableGenes(load_annotation(source))
