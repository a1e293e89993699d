"""The committed gRPC stubs are exactly what grpc_tools.protoc makes of license.proto."""

from __future__ import annotations

from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[4]
PROTO = Path("services/license/proto/license.proto")
GENERATED = ("license_pb2.py", "license_pb2.pyi", "license_pb2_grpc.py")


def test_the_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(ROOT / PROTO),
        ]
    )
    assert status == 0
    for name in GENERATED:
        fresh = (tmp_path / PROTO.parent / name).read_text()
        committed = (ROOT / PROTO.parent / name).read_text()
        assert committed == fresh, (
            f"{name} is stale: regenerate with `python -m grpc_tools.protoc -I . "
            f"--python_out=. --pyi_out=. --grpc_python_out=. {PROTO}`"
        )
