from collections import Counter

from pipeline.labels.dictionary import BACKGROUND, CLASSES, load_dictionary


def test_appendix_d_has_305_words_and_15_classes():
    vocab = load_dictionary()
    assert len(vocab.words) == 305
    assert len(CLASSES) == 15 and BACKGROUND in CLASSES
    assert {w.principal_object for w in vocab.words.values()} == set(CLASSES)
    # Entries run 1..306 with the duplicate "oping" (57) dropped.
    assert sorted(w.entry for w in vocab.words.values()) == [n for n in range(1, 307) if n != 57]


def test_misprints_are_resolved():
    words = load_dictionary().words
    assert words["hoovering"].entry == 224 and words["hovering"].entry == 225
    assert words["choke"].principal_object == BACKGROUND
    assert words["gulping"].paper_count == 2
    assert words["vigorously"].principal_object == "man"
    assert words["cry"].paper_count == 1363 and words["crying"].paper_count == 160


def test_table2_is_the_sum_of_word_counts_per_class():
    sums = Counter()
    for w in load_dictionary().words.values():
        sums[w.principal_object] += w.paper_count
    for cls, (_, table2) in CLASSES.items():
        if cls == "horse":  # Table 2 counts "oping" twice, as the appendix prints it twice
            assert sums[cls] + 1 == table2
        elif table2 is not None:
            assert sums[cls] == table2, cls
