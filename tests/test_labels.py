import pytest

from emoscope.labels import EMOTIONS, LabelError, canonical_name, clean_labels, get_scheme


def test_canonical_order_is_fer2013_ids():
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.mark.parametrize(
    "raw,expected",
    [("HAPPINESS", "happy"), (" happiness ", "happy"), ("Joy", "happy"), ("anger", "angry"), ("SADNESS", "sad"),
     ("surprised", "surprise"), ("Neutral", "neutral"), ("fear", "fear")],
)
def test_canonical_name_resolves_case_and_synonyms(raw, expected):
    assert canonical_name(raw) == expected


def test_clean_labels_merges_contempt_into_disgust():
    assert clean_labels(["contempt", "DISGUST", "happiness"]) == [1, 1, 3]


def test_explicit_merge_table_overrides_scheme():
    assert clean_labels(["contempt"], merges={"contempt": "angry"}) == [0]


def test_unknown_labels_listed_with_counts():
    with pytest.raises(LabelError) as exc:
        clean_labels(["happy", "bored", "bored", "confused"], where="legend.csv")
    msg = str(exc.value)
    assert "legend.csv" in msg and "'bored' x2" in msg and "'confused' x1" in msg


def test_schemes():
    assert get_scheme("fer6").classes == ("angry", "fear", "happy", "sad", "surprise", "neutral")
    assert get_scheme("ferplus8").classes[-1] == "contempt"
    assert clean_labels(["contempt"], "ferplus8") == [7]
    with pytest.raises(LabelError, match="unknown label scheme"):
        get_scheme("fer9")
