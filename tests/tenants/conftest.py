import pytest

from tests.taxonomy.factories import build_news_tree, shared_label_sets


@pytest.fixture
def tree(db):
    return build_news_tree()


@pytest.fixture
def label_sets(tree):
    return shared_label_sets()


@pytest.fixture
def news_topics(label_sets):
    return label_sets[0]
