"""The table of value kinds (tfedge/codecs/_kinds.py) and the arguments `encode_payload`
and `payload_size` share."""

import inspect

import numpy as np
import pytest

from tfedge.codecs import _kinds, encode_payload, payload_size, read_header
from tfedge.errors import FormatError

_RAW = dict(
    element_type=3,
    element_size=1,
    count=4,
    layout="dense",
    value_kind="raw",
    elements=np.arange(4, dtype=np.uint8),
)


def test_kind_codes_are_their_table_positions():
    # read_header looks a kind up by its code as an index into the table.
    assert [kind.code for kind in _kinds.KINDS] == list(range(len(_kinds.KINDS)))
    assert _kinds.VALUE_KINDS == ("raw", "codebook", "channel_codebook", "planes")


@pytest.mark.parametrize("kind", _kinds.KINDS, ids=lambda k: k.name)
def test_kind_options_are_encode_payload_arguments(kind):
    assert set(kind.options) <= set(inspect.signature(encode_payload).parameters)


@pytest.mark.parametrize("option", ["channel_run", "plane_rotation"])
def test_an_option_of_another_kind_names_its_kind(option):
    owner = next(k.name for k in _kinds.KINDS if option in k.options)
    with pytest.raises(ValueError, match=f"`{option}` applies to value_kind='{owner}'"):
        encode_payload(**_RAW, **{option: 1})


def test_unknown_kind_code_lists_the_kinds():
    payload = bytearray(encode_payload(**_RAW))
    code = len(_kinds.KINDS)
    payload[6] = code
    # The kinds listed in code order (a new kind adds itself at the end).
    listed = "0 raw, 1 codebook, 2 per-channel codebook, 3 byte planes"
    with pytest.raises(FormatError, match=f"unknown value kind {code} \\({listed}"):
        read_header(bytes(payload), check_crc=False)


def test_payload_size_takes_encode_payload_defaults():
    # Only the required arguments: every other one takes encode_payload's default.
    assert payload_size(**_RAW) == len(encode_payload(**_RAW))
    assert payload_size(**_RAW, estimate=True) == len(encode_payload(**_RAW))


def test_payload_size_rejects_missing_and_unknown_arguments():
    required = {k: v for k, v in _RAW.items() if k != "layout"}
    with pytest.raises(TypeError, match="Missing keyword arguments: layout"):
        payload_size(**required)
    with pytest.raises(TypeError, match="Unexpected keyword arguments: bogus"):
        payload_size(**_RAW, bogus=1)
