"""Every number in the README's result tables equals what the committed records under
results/ give (the tables are written by ``python -m srpose_lib.study readme``)."""

from pathlib import Path

from srpose_lib import study

ROOT = Path(__file__).resolve().parents[1]


def test_readme_study_tables_match_the_committed_records():
    text = (ROOT / "README.md").read_text()
    blocks = study.readme_blocks(text, ROOT)
    if any((ROOT / "results").glob("quick/*/*.json")):
        assert blocks, "results/quick holds study records but the README shows none of them"
    for current, expected in blocks:
        assert current == expected, ("the README's table differs from the committed records; "
                                     "run `python -m srpose_lib.study readme`:\n" + expected)


def test_a_changed_number_is_caught(tmp_path):
    recs = tmp_path / "results" / "quick" / "x"
    recs.mkdir(parents=True)
    import json

    for seed, (a, b) in enumerate([(30.0, 31.0), (40.0, 40.5)]):
        for variant, v in (("fp32", a), ("bf16", b)):
            (recs / f"hand-{variant}-seed{seed}.json").write_text(json.dumps(
                {"task": "hand", "variant": variant, "seed": seed,
                 "metrics": {"pck/hand/source_only/target_test/all": v}}))
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- study: results/quick/x baseline=fp32 metric=target_test/all -->\nold\n<!-- /study -->\n")
    assert study.update_readme(readme, tmp_path) == 1
    (current, expected), = study.readme_blocks(readme.read_text(), tmp_path)
    assert current == expected and "+0.75 [" in expected and "35.0 ± 7.1" in expected
    readme.write_text(readme.read_text().replace("35.0 ± 7.1", "35.1 ± 7.1"))
    (current, expected), = study.readme_blocks(readme.read_text(), tmp_path)
    assert current != expected
