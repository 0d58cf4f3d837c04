"""Word lists for the generator: names, places and jobs, many of them not ASCII.

Each name carries an ASCII spelling for the user principal name.
"""

from __future__ import annotations

GIVEN_NAMES: tuple[tuple[str, str], ...] = (
    ("Anna", "anna"), ("Zoë", "zoe"), ("Søren", "soren"), ("Jürgen", "jurgen"), ("Mária", "maria"),
    ("José", "jose"), ("François", "francois"), ("Łukasz", "lukasz"), ("Ægir", "aegir"), ("Björk", "bjork"),
    ("Siobhán", "siobhan"), ("Chloé", "chloe"), ("Renée", "renee"), ("伟", "wei"), ("芳", "fang"),
    ("Ngozi", "ngozi"), ("Aarav", "aarav"), ("Ólafur", "olafur"), ("Ines", "ines"), ("Mohammed", "mohammed"),
    ("Yuki", "yuki"), ("Priya", "priya"), ("Olivia", "olivia"), ("Liam", "liam"), ("Noah", "noah"),
    ("Emma", "emma"), ("Mateo", "mateo"), ("Sofía", "sofia"), ("Håkon", "hakon"), ("Dženana", "dzenana"),
    ("Çağla", "cagla"), ("Ōta", "ota"), ("Ewa", "ewa"), ("Grégoire", "gregoire"), ("Niamh", "niamh"),
    ("Kwame", "kwame"), ("Ana", "ana"), ("Lars", "lars"), ("Marta", "marta"), ("明", "ming"),
)

SURNAMES: tuple[tuple[str, str], ...] = (
    ("Müller", "muller"), ("Strauß", "strauss"), ("Øvergaard", "overgaard"), ("Núñez", "nunez"),
    ("O'Brien", "obrien"), ("王", "wang"), ("李", "li"), ("张", "zhang"), ("Kowalczyk", "kowalczyk"),
    ("Dąbrowski", "dabrowski"), ("Çelik", "celik"), ("Håkansson", "hakansson"), ("Smith", "smith"),
    ("García", "garcia"), ("Lefèvre", "lefevre"), ("Nakamura", "nakamura"), ("Okafor", "okafor"),
    ("Sharma", "sharma"), ("Johansson", "johansson"), ("Dvořák", "dvorak"), ("Jensen", "jensen"),
    ("Rossi", "rossi"), ("van der Berg", "vanderberg"), ("Nguyễn", "nguyen"), ("Papadopoulos", "papadopoulos"),
    ("Ó Súilleabháin", "osuilleabhain"), ("Schröder", "schroder"), ("Fernández", "fernandez"),
    ("Ivanova", "ivanova"), ("Brown", "brown"), ("Wilson", "wilson"), ("Łęcki", "lecki"),
)

# (street, city, state, postal code, country)
PLACES: tuple[tuple[str, str, str | None, str, str], ...] = (
    ("Hauptstraße", "München", "Bayern", "80331", "Germany"),
    ("Bahnhofstrasse", "Zürich", "ZH", "8001", "Switzerland"),
    ("ulica Floriańska", "Kraków", "Małopolskie", "31-019", "Poland"),
    ("Avenida Paulista", "São Paulo", "SP", "01311-000", "Brazil"),
    ("中山路", "北京", "北京市", "100000", "China"),
    ("Storgata", "Tromsø", "Troms", "9008", "Norway"),
    ("Stortorget", "Malmö", "Skåne", "211 22", "Sweden"),
    ("Rue de l'Église", "Montréal", "QC", "H2X 1Y4", "Canada"),
    ("Calle de Alcalá", "Madrid", None, "28014", "Spain"),
    ("Main Street", "Seattle", "WA", "98101", "United States"),
    ("Nørregade", "København", None, "1165", "Denmark"),
    ("Váci utca", "Budapest", None, "1052", "Hungary"),
    ("King Street", "Dublin", "Leinster", "D02 X285", "Ireland"),
    ("Shibuya", "東京", "東京都", "150-0002", "Japan"),
    ("MG Road", "Bengaluru", "Karnataka", "560001", "India"),
    ("Broad Street", "Lagos", "Lagos", "100001", "Nigeria"),
)

PHONE_PREFIXES: tuple[str, ...] = (
    "+49 89", "+41 44", "+48 12", "+55 11", "+86 10", "+47 77", "+46 40", "+1 514", "+34 91", "+1 206",
)

JOB_TITLES: tuple[str | None, ...] = (
    "Sales Manager", "Account Executive", "Support Engineer", "Développeur", "Geschäftsführer",
    "Projektleiterin", "Consultant", "Analyst", "Software Engineer", "Marketing Specialist",
    "Customer Service Agent", "財務担当", "HR Partner", "Service Technician", None, None,
)

GUEST_DOMAINS: tuple[str, ...] = ("fabrikam.com", "northwind.example", "gmail.com", "outlook.com", "tailspin.de")

SERVICE_PRINCIPALS: tuple[str, ...] = (
    "Sync Robot", "Payroll Connector", "Marketing Automation", "Backup Agent", "Reporting App",
)
