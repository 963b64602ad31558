def title(text: str) -> str:
    return text.replace("-", " ").title()
