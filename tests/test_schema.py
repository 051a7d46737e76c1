"""The schema tables: conventions that every module relies on, and the generated documentation in sync."""

from pathlib import Path

from amsnb import schema


def test_layer_views_alternate_per_superlayer():
    assert schema.LAYER_VIEW[:4] == ("y", "y", "x", "x")
    assert len(schema.Y_LAYERS) == 10 and len(schema.X_LAYERS) == 8  # 5 superlayers measure y, 4 measure x


def test_branch_lookup_and_defaults():
    assert schema.ECAL["ecal_edep"].shape == (18, 72)
    empty = schema.ECAL.empty(3)
    assert (empty["label"] == -1).all() and empty["ecal_edep"].dtype.name == "float32"
    assert set(schema.NUCLEI.required) <= set(schema.NUCLEI.names)


def test_docs_schema_is_generated_from_the_code():
    doc = Path(__file__).resolve().parent.parent / "docs" / "schema.md"
    assert doc.read_text().strip() == schema.markdown().strip(), "regenerate: python -m amsnb.schema > docs/schema.md"
