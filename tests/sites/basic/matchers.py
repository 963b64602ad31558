def word(value: str) -> bool:
    return value.isalpha()
