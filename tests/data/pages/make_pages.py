# ruff: noqa: E501  (page templates: long lines of HTML)
"""How the page set was made (issue #29): each page is one article of the labelled sets
(tests/data/*.toml, marks removed) set in one of eight page layouts written by hand after
the shapes of common news sites: navigation, cookie banners, bylines, share rows,
"most read" and related boxes, newsletter forms, comments, captions, ads, paywall notes,
footers.  The article's paragraphs are its truth (NAME.txt next to NAME.html).  No page was
downloaded: this machine has no internet.  Run from the repository's root:
``python tests/data/pages/make_pages.py``."""

from __future__ import annotations

import html
from pathlib import Path

from stream_ner.evaluate import load_labelled

HERE = Path(__file__).resolve().parent
DATA = HERE.parent


def paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


def ps(paras: list[str]) -> str:
    return "\n".join(f"<p>{html.escape(p)}</p>" for p in paras)


NAV = ('<nav class="main-nav"><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li>'
       '<li><a href="/business">Business</a></li><li><a href="/sport">Sport</a></li>'
       '<li><a href="/opinion">Opinion</a></li></ul></nav>')
COOKIES = ('<div id="cookie-consent" class="cookie-banner"><p>We use cookies to personalise content and ads '
           'and to analyse our traffic.</p><button>Accept all</button><button>Manage settings</button></div>')
SHARE = ('<div class="share"><a href="#">Share on Facebook</a> <a href="#">Share on X</a> '
         '<a href="#">Email this article</a></div>')
MOST_READ = ('<aside class="most-read"><h3>Most read</h3><ol><li><a href="/a">Celebrity couple announce '
             'split after ten years</a></li><li><a href="/b">Ten autumn recipes you will love</a></li>'
             '<li><a href="/c">Markets slide as oil jumps</a></li></ol></aside>')
NEWSLETTER = ('<form class="newsletter"><h4>Sign up to our morning briefing</h4><p>The news you need, '
              'every weekday at 7am.</p><input type="email" placeholder="Your email"><button>Subscribe'
              '</button></form>')
FOOTER = ('<footer><p>&copy; 2026 Example Media Group. All rights reserved.</p><ul><li><a href="/terms">'
          'Terms of use</a></li><li><a href="/privacy">Privacy policy</a></li><li><a href="/contact">Contact us'
          '</a></li></ul></footer>')


def classic(title: str, paras: list[str], lang: str) -> str:
    return f"""<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{html.escape(title)} | Example News</title>
<meta property="og:title" content="{html.escape(title)}"></head><body>
<header><a class="logo" href="/">Example News</a>{NAV}</header>{COOKIES}
<div class="breadcrumb"><a href="/">Home</a> &gt; <a href="/world">World</a></div>
<article><h1>{html.escape(title)}</h1><p class="byline">By Jane Roe, Foreign Correspondent</p>
<time datetime="2026-11-30T08:15:00Z">30 November 2026</time>{SHARE}
{ps(paras)}
{SHARE}</article>
<section class="related"><h3>Related stories</h3><ul><li><a href="/r1">Talks stall as deadline nears</a></li>
<li><a href="/r2">What we know so far</a></li></ul></section>{MOST_READ}{NEWSLETTER}{FOOTER}</body></html>"""


def wire(title: str, paras: list[str], lang: str) -> str:
    body = ps(paras)
    return f"""<html lang="{lang}"><head><title>{html.escape(title)}</title></head><body>
<div id="top-bar"><a href="/">Wire</a> | <a href="/markets">Markets</a> | <a href="/login">Log in</a></div>
<div class="article-wrap"><h1 class="headline">{html.escape(title)}</h1>
<div class="meta">2 minute read · Updated 3 hours ago</div>
<div class="article-body">{body}
<p class="credit">Reporting by Jane Roe; Editing by John Doe</p>
<p class="trust">Our Standards: The Trust Principles.</p></div></div>
<div class="more"><h2>More from Wire</h2><a href="/x">Oil prices rise on supply worries</a>
<a href="/y">Stocks open higher</a></div>{FOOTER}</body></html>"""


def blog(title: str, paras: list[str], lang: str) -> str:
    return f"""<html lang="{lang}"><head><title>{html.escape(title)} – A News Blog</title></head><body class="single-post">
<div id="masthead"><h2 class="site-title">A News Blog</h2><p>Notes on the world</p></div>
<div id="primary"><div class="post"><h1 class="entry-title">{html.escape(title)}</h1>
<div class="entry-meta">Posted on November 30, 2026 by editor</div>
<div class="entry-content">{ps(paras)}</div>
<div class="tags">Tags: <a href="/t/world">world</a>, <a href="/t/politics">politics</a></div></div>
<div id="comments"><h3>3 comments</h3><div class="comment"><p>Great article, thanks for writing it.</p></div>
<div class="comment"><p>I disagree with the second point, the numbers do not add up at all.</p></div>
<div class="comment"><p>First!</p></div><form><textarea>Leave a reply</textarea></form></div></div>
<div id="secondary" class="widget-area"><h3>Archives</h3><ul><li>November 2026</li><li>October 2026</li></ul>
<h3>Recent posts</h3><ul><li><a href="/p1">A quiet week in the capital</a></li></ul></div>
<footer>Proudly powered by WordPress</footer></body></html>"""


def magazine(title: str, paras: list[str], lang: str) -> str:
    head, rest = paras[:1], paras[1:]
    middle = len(rest) // 2
    return f"""<html lang="{lang}"><head><title>{html.escape(title)}</title>
<meta name="author" content="Jane Roe"></head><body>{NAV}
<main><article class="feature"><header><h1>{html.escape(title)}</h1><p class="standfirst">A long read.</p></header>
<figure><img src="/img/a.jpg" alt=""><figcaption>Soldiers at a checkpoint. Photograph: Example Agency</figcaption></figure>
{ps(head)}
<div class="ad-slot">Advertisement</div>
{ps(rest[:middle])}
<aside class="pullquote">“It is a turning point,” one official said.</aside>
{ps(rest[middle:])}
</article></main>{NEWSLETTER}{FOOTER}</body></html>"""


def tables(title: str, paras: list[str], lang: str) -> str:
    return f"""<html lang="{lang}"><head><title>{html.escape(title)}</title></head><body>
<table width="100%"><tr><td class="left" width="150"><a href="/">Front page</a><br><a href="/archive">Archive</a>
<br><a href="/weather">Weather</a></td><td class="main"><font size="5"><b>{html.escape(title)}</b></font>
<br><i>From our correspondent</i>
{ps(paras)}
</td><td class="right" width="160"><b>Classifieds</b><br>Cars for sale<br>Flats to let</td></tr></table>
<center>Copyright 2026 The Daily Example</center></body></html>"""


def divsoup(title: str, paras: list[str], lang: str) -> str:
    inner = []
    for n, p in enumerate(paras):
        inner.append(f'<div class="text-block"><span>{html.escape(p)}</span></div>')
        if n == 1:
            inner.append('<div class="inline-related">Read more: <a href="/z">How the crisis began</a></div>')
    blocks = "\n".join(inner)
    return f"""<html lang="{lang}"><head><title>{html.escape(title)}</title></head><body>{COOKIES}
<div id="header"><div class="nav">{NAV}</div></div>
<div id="content" class="story-body"><h1>{html.escape(title)}</h1>
{blocks}
</div><div class="ad">Advertisement</div>{MOST_READ}{FOOTER}</body></html>"""


def paywall(title: str, paras: list[str], lang: str) -> str:
    return f"""<html lang="{lang}"><head><title>{html.escape(title)}</title>
<meta property="article:published_time" content="2026-11-30"></head><body>
<header>{NAV}</header><main><h1>{html.escape(title)}</h1>{SHARE}
<section class="article-content">{ps(paras)}</section>
<div class="paywall-note"><p>You have read 3 of 5 free articles this month. Subscribe for unlimited access.</p></div>
{SHARE}</main>{NEWSLETTER}{FOOTER}</body></html>"""


def live(title: str, paras: list[str], lang: str) -> str:
    posts = "\n".join(f'<div class="post-entry"><span class="time">{9 + n}:00</span><p>{html.escape(p)}</p></div>'
                      for n, p in enumerate(paras))
    return f"""<html lang="{lang}"><head><title>{html.escape(title)}</title></head><body>{NAV}
<h1>{html.escape(title)}</h1><div class="key-events"><h2>Key events</h2><ul><li><a href="#1">Show key events only</a></li></ul></div>
<div class="live-blog">{posts}</div>
<button>Load more updates</button>{FOOTER}</body></html>"""


LAYOUTS = [classic, wire, blog, magazine, tables, divsoup, paywall, live]


def main() -> None:
    articles = [*load_labelled(DATA / "ner_labelled.toml"), *load_labelled(DATA / "geo_labelled.toml")]
    made = 0
    for n, article in enumerate(articles[:32]):
        paras = paragraphs(article.text)
        if len(paras[0].split()) <= 15:  # a headline (the sample articles start with theirs)
            title, paras = paras[0], paras[1:]
        else:  # wire copy starts with its lead: the headline is made of its first words
            title = " ".join(paras[0].split()[:7]).rstrip(",.;:")
        layout = LAYOUTS[n % len(LAYOUTS)]
        name = f"{n:02d}-{layout.__name__}-{article.id}"
        (HERE / f"{name}.html").write_text(layout(title, paras, article.language))
        (HERE / f"{name}.txt").write_text("\n\n".join(paras) + "\n")
        made += 1
    print(f"{made} pages in {HERE}")


if __name__ == "__main__":
    main()
