"""The parts of a Markdown document that tests run as written."""

import re


def section(text: str, title: str) -> str:
    """The `## title` section of `text`, up to the next `## ` heading."""
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def shell_blocks(text: str):
    """The indented (4-space) code blocks of a Markdown text, outside fences."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return [re.sub(r"^    ", "", block, flags=re.M)
            for block in re.findall(r"(?:^    .*\n)+", text, flags=re.M)]


def python_blocks(text: str):
    """The ```python fenced blocks of a Markdown text."""
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)
