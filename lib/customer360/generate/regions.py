"""What the synthetic people of each region are called, where they live and how they are reached.

The vocabularies are kept one table per field, a region a row, so that adding a region touches
each table once.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RegionProfile:
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    streets: tuple[str, ...]
    cities: tuple[str, ...]
    domains: tuple[str, ...]
    phone_prefix: str  # international dialling code
    phone_digits: int  # national significant number length
    postcode: str  # '9' a digit, 'A' a letter, anything else literal
    currency: str
    time_zone: str
    weight: float  # the region's share of the people


#: given names, by region
FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "us": ("James", "Robert", "John", "Michael", "William", "David", "Richard", "Joseph", "Thomas", "Charles", "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen", "Daniel", "Matthew", "Anthony", "Katherine", "Margaret", "Christopher", "Nancy", "Steven", "Emily", "Andrew"),
    "gb": ("Oliver", "George", "Harry", "Jack", "Charlie", "Thomas", "James", "William", "Daniel", "Alexander", "Olivia", "Amelia", "Isla", "Ava", "Emily", "Sophie", "Grace", "Lily", "Jessica", "Elizabeth", "Margaret", "Katherine", "Samuel", "Joseph", "Edward", "Charlotte", "Lucy", "Hannah", "Robert", "Michael"),
    "de": ("Lukas", "Leon", "Maximilian", "Felix", "Paul", "Jonas", "Johannes", "Stefan", "Michael", "Andreas", "Anna", "Lena", "Lea", "Hannah", "Sophie", "Katharina", "Julia", "Sabine", "Claudia", "Elisabeth", "Jürgen", "Günter", "Matthias", "Thomas", "Wolfgang", "Ursula", "Monika", "Petra", "Susanne", "Christian"),
    "fr": ("Jean", "Pierre", "Michel", "Philippe", "Nicolas", "Thomas", "Julien", "Antoine", "François", "Louis", "Marie", "Nathalie", "Isabelle", "Sophie", "Catherine", "Camille", "Julie", "Céline", "Élodie", "Hélène", "Frédéric", "Sébastien", "Christophe", "Laurent", "Stéphane", "Émilie", "Chloé", "Léa", "Manon", "Margaux"),
}
#: surnames, by region
LAST_NAMES: dict[str, tuple[str, ...]] = {
    "us": ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson"),
    "gb": ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke", "Patel", "Khan", "Lewis", "James", "Phillips", "Mason", "Mitchell", "Rose", "Davis", "Turner"),
    "de": ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange", "Schmitt", "Werner", "Krause", "Meier", "Lehmann"),
    "fr": ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier", "Morel", "Girard", "André", "Lefebvre", "Mercier", "Dupont", "Lambert", "Bonnet", "François", "Martinez"),
}
#: street names (a house number goes before them), by region
STREETS: dict[str, tuple[str, ...]] = {
    "us": ("Main Street", "Oak Avenue", "Maple Drive", "Cedar Lane", "Park Road", "Washington Boulevard", "Lake Street", "Hill Road", "Pine Street", "Elm Street"),
    "gb": ("High Street", "Station Road", "Church Lane", "Victoria Road", "Green Lane", "Manor Road", "Park Avenue", "Queens Road", "Kings Road", "Mill Lane"),
    "de": ("Hauptstraße", "Schulstraße", "Gartenstraße", "Bahnhofstraße", "Dorfstraße", "Bergstraße", "Lindenstraße", "Kirchstraße", "Waldstraße", "Ringstraße"),
    "fr": ("rue de la Paix", "avenue des Champs", "rue Victor Hugo", "boulevard Saint-Michel", "rue de la République", "rue Pasteur", "avenue Jean Jaurès", "rue du Moulin", "place de la Gare", "rue des Écoles"),
}
#: cities, by region
CITIES: dict[str, tuple[str, ...]] = {
    "us": ("New York", "Chicago", "Houston", "Phoenix", "Seattle", "Denver", "Boston", "Atlanta", "Austin", "Portland"),
    "gb": ("London", "Manchester", "Birmingham", "Leeds", "Glasgow", "Bristol", "Liverpool", "Edinburgh", "Cardiff", "York"),
    "de": ("Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Stuttgart", "Düsseldorf", "Leipzig", "Dresden", "Bremen"),
    "fr": ("Paris", "Marseille", "Lyon", "Toulouse", "Nice", "Nantes", "Strasbourg", "Montpellier", "Bordeaux", "Lille"),
}
#: email domains, by region
EMAIL_DOMAINS: dict[str, tuple[str, ...]] = {
    "us": ("gmail.com", "yahoo.com", "outlook.com", "aol.com", "icloud.com"),
    "gb": ("gmail.com", "hotmail.co.uk", "btinternet.com", "yahoo.co.uk", "outlook.com"),
    "de": ("gmail.com", "web.de", "gmx.de", "t-online.de", "outlook.de"),
    "fr": ("gmail.com", "orange.fr", "free.fr", "laposte.net", "hotmail.fr"),
}
_SETTINGS = {
    "us": dict(phone_prefix="1", phone_digits=10, postcode="99999", currency="USD", time_zone="America/New_York", weight=0.4),
    "gb": dict(phone_prefix="44", phone_digits=10, postcode="AA9 9AA", currency="GBP", time_zone="Europe/London", weight=0.25),
    "de": dict(phone_prefix="49", phone_digits=11, postcode="99999", currency="EUR", time_zone="Europe/Berlin", weight=0.2),
    "fr": dict(phone_prefix="33", phone_digits=9, postcode="99999", currency="EUR", time_zone="Europe/Paris", weight=0.15),
}

REGION_PROFILES: dict[str, RegionProfile] = {
    code: RegionProfile(
        first_names=FIRST_NAMES[code],
        last_names=LAST_NAMES[code],
        streets=STREETS[code],
        cities=CITIES[code],
        domains=EMAIL_DOMAINS[code],
        **settings,
    )
    for code, settings in _SETTINGS.items()
}
