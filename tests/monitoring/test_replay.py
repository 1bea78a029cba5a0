"""A short version of the acceptance replay (bench/monitoring_replay.py), with a fixed seed.

Real held-out BBC texts, classified by a model trained on the rest, through the production
pipeline: 10 stable days (no alert may open), then each of the five shifts on top of them: each
opens its one alert within 2 days, except the gradual change (3 percentage points a day), which
this small a replay catches on day 3 (the full bench: docs/benchmarks.md).
"""

from __future__ import annotations

from datetime import date

import pytest

from monitoring import replay
from monitoring.models import ACTIVE_RULES

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture(scope="module")
def news_pool():
    # A smaller training set and shorter texts keep the test to seconds; the model stays ~95 %.
    return replay.build_pool("news", max_train=700, text_chars=400, seed=1)


def test_short_replay_stays_quiet_then_catches_every_shift(news_pool):
    assert news_pool.accuracy > 0.85
    result = replay.replay(
        needs=("news",),
        stable_days=10,
        shift_days=3,
        seed=3,
        end=date(2025, 5, 20),
        pools={"news": news_pool},
    )
    assert {rule: result.false_alerts[("news", rule)] for rule in ACTIVE_RULES} == dict.fromkeys(
        ACTIVE_RULES, 0
    )
    for scenario in replay.SCENARIOS:
        detection = result.detections[("news", scenario)]
        assert detection["expected_alerts"] == 1, (scenario, detection)
        limit = 3 if scenario == "gradual" else 2
        assert detection["days_to_detect"] <= limit, (scenario, detection)
    table = replay.result_table(result)
    assert "| label_share | 0 |" in table and "| news-topics" not in table.split("\n")[0]
