"""A protoc plugin (stdin: CodeGeneratorRequest, stdout: CodeGeneratorResponse) for grpcio's
Python service stubs, which exist only as a generator built into grpcio-tools' protoc.

buf runs only protoc's own generators through `protoc_builtin`, so this hands the request's
files to grpcio-tools' protoc as a descriptor set and returns what it wrote. Local, pinned by the
client tools venv, and no network.
"""

import pathlib
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def main() -> int:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    # The stubs only reference messages, so proto3 `optional` fields need nothing from them.
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    with tempfile.TemporaryDirectory() as tmp:
        descriptors = pathlib.Path(tmp, "descriptors.pb")
        descriptors.write_bytes(
            descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString()
        )
        out = pathlib.Path(tmp, "out")
        out.mkdir()
        args = ["grpc_tools.protoc", f"--descriptor_set_in={descriptors}"]
        option = f"{request.parameter}:" if request.parameter else ""
        args.append(f"--grpc_python_out={option}{out}")
        args.extend(request.file_to_generate)
        if protoc.main(args) != 0:
            response.error = "grpcio-tools' protoc failed on " + ", ".join(request.file_to_generate)
        else:
            for path in sorted(p for p in out.rglob("*") if p.is_file()):
                response.file.add(name=path.relative_to(out).as_posix(), content=path.read_text())
    sys.stdout.buffer.write(response.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())
