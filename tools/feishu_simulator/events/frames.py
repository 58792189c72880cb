"""``pbbp2.Frame``, the protobuf message of Feishu's long connection, built with ``protobuf``.

The same fields and numbers as the official SDK's ``lark_oapi/ws/pb/pbbp2.proto`` (that module
cannot be imported alone: importing it loads the whole SDK). tests/simulator checks that the
official client reads what this writes.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

CONTROL, DATA = 0, 1  # Frame.method


def _frame_class() -> Any:
    proto = descriptor_pb2.FileDescriptorProto(
        name="feishu_simulator_pbbp2.proto", package="pbbp2", syntax="proto2"
    )
    f = descriptor_pb2.FieldDescriptorProto
    header = proto.message_type.add(name="Header")
    header.field.add(name="key", number=1, type=f.TYPE_STRING, label=f.LABEL_REQUIRED)
    header.field.add(name="value", number=2, type=f.TYPE_STRING, label=f.LABEL_REQUIRED)
    frame = proto.message_type.add(name="Frame")
    for name, number, kind in (("SeqID", 1, f.TYPE_UINT64), ("LogID", 2, f.TYPE_UINT64)):
        frame.field.add(name=name, number=number, type=kind, label=f.LABEL_REQUIRED)
    frame.field.add(name="service", number=3, type=f.TYPE_INT32, label=f.LABEL_REQUIRED)
    frame.field.add(name="method", number=4, type=f.TYPE_INT32, label=f.LABEL_REQUIRED)
    frame.field.add(
        name="headers", number=5, type=f.TYPE_MESSAGE, label=f.LABEL_REPEATED, type_name=".pbbp2.Header"
    )
    frame.field.add(name="payload_encoding", number=6, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    frame.field.add(name="payload_type", number=7, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    frame.field.add(name="payload", number=8, type=f.TYPE_BYTES, label=f.LABEL_OPTIONAL)
    frame.field.add(name="LogIDNew", number=9, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()  # our own pool: no clash with anyone's "pbbp2"
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("pbbp2.Frame"))


Frame = _frame_class()


def make_frame(
    method: int, service: int, headers: dict[str, str], payload: bytes = b"", seq_id: int = 0
) -> Any:
    frame = Frame(SeqID=seq_id, LogID=0, service=service, method=method, payload=payload)
    for key, value in headers.items():
        frame.headers.add(key=key, value=value)
    return frame


def headers_of(frame: Any) -> dict[str, str]:
    return {h.key: h.value for h in frame.headers}


def parse(data: bytes) -> Any:
    frame = Frame()
    frame.ParseFromString(data)
    return frame
