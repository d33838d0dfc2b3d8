"""Sparkplug B payload schema (``org.eclipse.tahu.protobuf.Payload``), built at import.

Written from the Sparkplug 3.0.0 specification (chapter 6.4, "Payload
definition"); field numbers, types and labels are those of the Eclipse Tahu
``sparkplug_b.proto`` (proto2), so the bytes are wire-compatible with Tahu
peers. The descriptor is built with :mod:`google.protobuf.descriptor_pb2`
instead of generated code, so no ``protoc`` step and no generated-code/runtime
version pinning are needed. :data:`Payload` is the message class.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "org.eclipse.tahu.protobuf"

_T = descriptor_pb2.FieldDescriptorProto
_TYPES = {
    "uint32": _T.TYPE_UINT32,
    "uint64": _T.TYPE_UINT64,
    "int32": _T.TYPE_INT32,
    "float": _T.TYPE_FLOAT,
    "double": _T.TYPE_DOUBLE,
    "bool": _T.TYPE_BOOL,
    "string": _T.TYPE_STRING,
    "bytes": _T.TYPE_BYTES,
}

# (name, number, label, type, oneof) ; label "o" optional, "r" repeated.
# Message-typed fields name the nested type path relative to Payload.
_MESSAGES: dict[str, dict[str, Any]] = {
    "Payload": {
        "fields": [
            ("timestamp", 1, "o", "uint64", None),
            ("metrics", 2, "r", "Payload.Metric", None),
            ("seq", 3, "o", "uint64", None),
            ("uuid", 4, "o", "string", None),
            ("body", 5, "o", "bytes", None),
        ],
        "ext": (6,),
    },
    "Payload.Template": {
        "fields": [
            ("version", 1, "o", "string", None),
            ("metrics", 2, "r", "Payload.Metric", None),
            ("parameters", 3, "r", "Payload.Template.Parameter", None),
            ("template_ref", 4, "o", "string", None),
            ("is_definition", 5, "o", "bool", None),
        ],
        "ext": (6,),
    },
    "Payload.Template.Parameter": {
        "fields": [
            ("name", 1, "o", "string", None),
            ("type", 2, "o", "uint32", None),
            ("int_value", 3, "o", "uint32", "value"),
            ("long_value", 4, "o", "uint64", "value"),
            ("float_value", 5, "o", "float", "value"),
            ("double_value", 6, "o", "double", "value"),
            ("boolean_value", 7, "o", "bool", "value"),
            ("string_value", 8, "o", "string", "value"),
            (
                "extension_value",
                9,
                "o",
                "Payload.Template.Parameter.ParameterValueExtension",
                "value",
            ),
        ],
    },
    "Payload.Template.Parameter.ParameterValueExtension": {"fields": [], "ext": (1,)},
    "Payload.DataSet": {
        "fields": [
            ("num_of_columns", 1, "o", "uint64", None),
            ("columns", 2, "r", "string", None),
            ("types", 3, "r", "uint32", None),
            ("rows", 4, "r", "Payload.DataSet.Row", None),
        ],
        "ext": (5,),
    },
    "Payload.DataSet.DataSetValue": {
        "fields": [
            ("int_value", 1, "o", "uint32", "value"),
            ("long_value", 2, "o", "uint64", "value"),
            ("float_value", 3, "o", "float", "value"),
            ("double_value", 4, "o", "double", "value"),
            ("boolean_value", 5, "o", "bool", "value"),
            ("string_value", 6, "o", "string", "value"),
            (
                "extension_value",
                7,
                "o",
                "Payload.DataSet.DataSetValue.DataSetValueExtension",
                "value",
            ),
        ],
    },
    "Payload.DataSet.DataSetValue.DataSetValueExtension": {"fields": [], "ext": (1,)},
    "Payload.DataSet.Row": {
        "fields": [("elements", 1, "r", "Payload.DataSet.DataSetValue", None)],
        "ext": (2,),
    },
    "Payload.PropertyValue": {
        "fields": [
            ("type", 1, "o", "uint32", None),
            ("is_null", 2, "o", "bool", None),
            ("int_value", 3, "o", "uint32", "value"),
            ("long_value", 4, "o", "uint64", "value"),
            ("float_value", 5, "o", "float", "value"),
            ("double_value", 6, "o", "double", "value"),
            ("boolean_value", 7, "o", "bool", "value"),
            ("string_value", 8, "o", "string", "value"),
            ("propertyset_value", 9, "o", "Payload.PropertySet", "value"),
            ("propertysets_value", 10, "o", "Payload.PropertySetList", "value"),
            ("extension_value", 11, "o", "Payload.PropertyValue.PropertyValueExtension", "value"),
        ],
    },
    "Payload.PropertyValue.PropertyValueExtension": {"fields": [], "ext": (1,)},
    "Payload.PropertySet": {
        "fields": [
            ("keys", 1, "r", "string", None),
            ("values", 2, "r", "Payload.PropertyValue", None),
        ],
        "ext": (3,),
    },
    "Payload.PropertySetList": {
        "fields": [("propertyset", 1, "r", "Payload.PropertySet", None)],
        "ext": (2,),
    },
    "Payload.MetaData": {
        "fields": [
            ("is_multi_part", 1, "o", "bool", None),
            ("content_type", 2, "o", "string", None),
            ("size", 3, "o", "uint64", None),
            ("seq", 4, "o", "uint64", None),
            ("file_name", 5, "o", "string", None),
            ("file_type", 6, "o", "string", None),
            ("md5", 7, "o", "string", None),
            ("description", 8, "o", "string", None),
        ],
        "ext": (9,),
    },
    "Payload.Metric": {
        "fields": [
            ("name", 1, "o", "string", None),
            ("alias", 2, "o", "uint64", None),
            ("timestamp", 3, "o", "uint64", None),
            ("datatype", 4, "o", "uint32", None),
            ("is_historical", 5, "o", "bool", None),
            ("is_transient", 6, "o", "bool", None),
            ("is_null", 7, "o", "bool", None),
            ("metadata", 8, "o", "Payload.MetaData", None),
            ("properties", 9, "o", "Payload.PropertySet", None),
            ("int_value", 10, "o", "uint32", "value"),
            ("long_value", 11, "o", "uint64", "value"),
            ("float_value", 12, "o", "float", "value"),
            ("double_value", 13, "o", "double", "value"),
            ("boolean_value", 14, "o", "bool", "value"),
            ("string_value", 15, "o", "string", "value"),
            ("bytes_value", 16, "o", "bytes", "value"),
            ("dataset_value", 17, "o", "Payload.DataSet", "value"),
            ("template_value", 18, "o", "Payload.Template", "value"),
            ("extension_value", 19, "o", "Payload.Metric.MetricValueExtension", "value"),
        ],
    },
    "Payload.Metric.MetricValueExtension": {"fields": [], "ext": (1,)},
}


class DataType(IntEnum):
    """Sparkplug B metric data types (specification 6.4.16)."""

    Unknown = 0
    Int8 = 1
    Int16 = 2
    Int32 = 3
    Int64 = 4
    UInt8 = 5
    UInt16 = 6
    UInt32 = 7
    UInt64 = 8
    Float = 9
    Double = 10
    Boolean = 11
    String = 12
    DateTime = 13
    Text = 14
    UUID = 15
    DataSet = 16
    Bytes = 17
    File = 18
    Template = 19
    PropertySet = 20
    PropertySetList = 21


def _build(msg_name: str, spec: dict[str, Any]) -> descriptor_pb2.DescriptorProto:
    d = descriptor_pb2.DescriptorProto(name=msg_name.rsplit(".", 1)[-1])
    oneofs: list[str] = []
    for name, number, label, typ, oneof in spec["fields"]:
        f = d.field.add(name=name, number=number)
        f.label = _T.LABEL_REPEATED if label == "r" else _T.LABEL_OPTIONAL
        if typ in _TYPES:
            f.type = _TYPES[typ]  # type: ignore[assignment]
        else:
            f.type = _T.TYPE_MESSAGE
            f.type_name = f".{PACKAGE}.{typ}"
        if oneof is not None:
            if oneof not in oneofs:
                oneofs.append(oneof)
                d.oneof_decl.add(name=oneof)
            f.oneof_index = oneofs.index(oneof)
    if "ext" in spec:
        d.extension_range.add(start=spec["ext"][0], end=536870912)
    for child, cspec in _MESSAGES.items():
        if "." in child and child.rsplit(".", 1)[0] == msg_name:
            d.nested_type.append(_build(child, cspec))
    return d


def _file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(
        name="autofab/sparkplug_b.proto", package=PACKAGE, syntax="proto2"
    )
    fd.message_type.append(_build("Payload", _MESSAGES["Payload"]))
    enum = fd.enum_type.add(name="DataType")
    for member in DataType:
        enum.value.add(name=member.name, number=int(member))
    return fd


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())
Payload: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{PACKAGE}.Payload"))
"""The Sparkplug B ``Payload`` message class."""

__all__ = ["PACKAGE", "DataType", "Payload"]
