import pytest

from qalqan.domain.countries import COUNTRY_CODES, parse_country


def test_every_code_is_two_letters_and_there_are_249() -> None:
    assert len(COUNTRY_CODES) == 249
    assert all(len(c) == 2 and c.isalpha() and c.isupper() for c in COUNTRY_CODES)


@pytest.mark.parametrize("text", ["kz", "KZ", " uz ", "AZ", "BA", "ZW", "AD"])
def test_assigned_codes_parse(text: str) -> None:
    assert parse_country(text) == text.strip().upper()


@pytest.mark.parametrize("text", ["ZZ", "", "KAZ", "U", "EU", "<b>"])
def test_unassigned_codes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 3166-1"):
        parse_country(text)
