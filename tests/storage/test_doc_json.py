"""Stored documents: the one encoder every store uses reads back what the standard library would."""

import json

from hypothesis import given, settings, strategies as st

from storage.doc_json import dump_doc, load_doc

keys = st.text(max_size=6).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s))
docs = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63) + 1, 2**63 - 1) | keys,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys | st.integers(0, 9), children, max_size=3),
    max_leaves=15,
)


@given(docs)
@settings(max_examples=300)
def test_a_document_reads_back_as_the_standard_library_would_store_it(doc):
    text = dump_doc(doc)
    assert isinstance(text, str)
    assert load_doc(text) == json.loads(json.dumps(doc, ensure_ascii=False))
    assert load_doc(json.dumps(doc, ensure_ascii=False)) == load_doc(text)  # rows written before the switch read the same
