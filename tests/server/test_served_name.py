"""What clients call the served model: a friendly name for the demo model, the path otherwise."""

from __future__ import annotations

from pyengine_server.cli import DEMO_MODEL, build_parser, served_model_names


def test_the_demo_model_is_served_as_pyengine_demo_however_its_path_is_spelled():
    assert served_model_names(str(DEMO_MODEL)) == ["pyengine-demo"]
    assert served_model_names(str(DEMO_MODEL) + "/") == ["pyengine-demo"]


def test_other_checkpoints_keep_their_path_and_given_names_win():
    assert served_model_names("tests/fixtures/parity/qwen2") == ["tests/fixtures/parity/qwen2"]
    args = build_parser().parse_args(["--served-model-name", "mine", "alias"])
    assert served_model_names(str(DEMO_MODEL), args.served_model_name) == ["mine", "alias"]
