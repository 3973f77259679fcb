"""CRM customer records: one to several a person, with nicknames, typos, swapped names, old
addresses, missing and junk identifiers, and a few rows bronze must quarantine."""
from __future__ import annotations

import numpy as np
import pandas as pd

from customer360.generate.people import END_DATE, addresses, email_variants, epoch_seconds, local_times, mask, phone_formats, pick, typo
from customer360.generate.regions import REGION_PROFILES

JUNK_EMAILS = np.array(["test@test.com", "n/a", "noemail@none.com", "none"])
JUNK_PHONES = np.array(["0000000000", "n/a", "1234567890"])
NICKNAMES = {
    "Robert": "Bob", "William": "Bill", "James": "Jim", "Michael": "Mike", "Elizabeth": "Liz",
    "Katherine": "Kate", "Margaret": "Peggy", "Richard": "Dick", "Joseph": "Joe", "Thomas": "Tom",
    "Charles": "Chuck", "Christopher": "Chris", "Daniel": "Dan", "Matthew": "Matt", "Anthony": "Tony",
    "Jennifer": "Jen", "Patricia": "Pat", "Susan": "Sue", "Andrew": "Andy", "Steven": "Steve",
    "Alexander": "Alex", "Samuel": "Sam", "Edward": "Ed", "Jessica": "Jess", "Charlotte": "Lottie",
    "Johannes": "Hans", "Katharina": "Kathi", "Matthias": "Matze", "Wolfgang": "Wolf", "Christian": "Chris",
    "Nicolas": "Nico", "Frédéric": "Fred", "Sébastien": "Seb", "Christophe": "Chris", "Catherine": "Cathy",
}


def crm_customers(rng: np.random.Generator, people: pd.DataFrame) -> pd.DataFrame:
    n = len(people)
    per_person = 1 + rng.poisson(2.0, n)
    owner = np.repeat(np.arange(n), per_person)
    m = len(owner)
    p = people.iloc[owner].reset_index(drop=True)
    first = p["first_name"].to_numpy(dtype=object)
    last = p["last_name"].to_numpy(dtype=object)
    region = p["region"].to_numpy(dtype=object)

    nick = mask(rng, m, 0.12) & np.isin(first, list(NICKNAMES))
    first = np.where(nick, np.vectorize(lambda v: NICKNAMES.get(v, v), otypes=[object])(first), first)
    first = typo(rng, first, mask(rng, m, 0.04))
    last = typo(rng, last, mask(rng, m, 0.04))
    swap = mask(rng, m, 0.03)
    first, last = np.where(swap, last, first), np.where(swap, first, last)
    case = rng.integers(0, 10, m)
    first = np.where(case == 0, np.char.upper(first.astype(str)).astype(object), first)
    last = np.where(case == 1, np.char.upper(last.astype(str)).astype(object), last)

    email = email_variants(rng, p["email"].to_numpy(dtype=object), 0.2)
    phone = phone_formats(rng, p["phone"].to_numpy(dtype=object), region)
    street = p["street"].to_numpy(dtype=object)
    city = p["city"].to_numpy(dtype=object)
    postcode = p["postcode"].to_numpy(dtype=object)
    # an older record of a person who moved carries the previous address
    first_of_person = np.r_[True, owner[1:] != owner[:-1]]
    moved = first_of_person & mask(rng, m, 0.15) & (per_person[owner] > 1)
    for code in np.unique(region[moved]):
        idx = np.flatnonzero(moved & (region == code))
        street[idx], city[idx], postcode[idx] = addresses(rng, REGION_PROFILES[code], len(idx))
    street = np.where(mask(rng, m, 0.05), np.char.upper(street.astype(str)).astype(object), street)

    dob = pd.to_datetime(p["date_of_birth"]).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    for column, prob in ((email, 0.08), (phone, 0.15), (dob, 0.2), (street, 0.05), (postcode, 0.05)):
        column[mask(rng, m, prob)] = None
    junk_email = mask(rng, m, 0.01)
    email[junk_email] = pick(rng, JUNK_EMAILS, int(junk_email.sum()))
    junk_phone = mask(rng, m, 0.01)
    phone[junk_phone] = pick(rng, JUNK_PHONES, int(junk_phone.sum()))

    business = p["segment"].to_numpy() == "business"
    company = np.where(business, last + " " + pick(rng, ["GmbH", "Ltd", "Inc", "SARL", "& Co"], m), None)
    updated = p["signup_ts"].to_numpy() + (rng.random(m) * (epoch_seconds(END_DATE) - p["signup_ts"].to_numpy())).astype(np.int64)
    updated_at = local_times(updated, region, with_offset=False, fmt="space")

    # rows bronze must quarantine: a birth date in the future, a missing id
    future = mask(rng, m, 0.001)
    dob[future] = "2030-05-17"
    crm_id = np.array([f"CRM-{i:08d}" for i in rng.permutation(m) + 1], dtype=object)
    crm_id[mask(rng, m, 0.0005)] = None
    return pd.DataFrame(
        {
            "crm_id": crm_id,
            "account_type": np.where(business, "B2B", "B2C"),
            "company_name": company,
            "first_name": first,
            "last_name": last,
            "email": email,
            "phone": phone,
            "birth_date": dob,
            "street": street,
            "city": city,
            "postcode": postcode,
            "country": np.char.upper(region.astype(str)),
            "loyalty_number": np.where(mask(rng, m, 0.8), p["loyalty_number"].to_numpy(dtype=object), None),
            "updated_at": updated_at,
            "region": region,
            "_person": p["person_id"].to_numpy(dtype=object),
        }
    )
