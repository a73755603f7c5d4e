"""schemathesis hooks for Postern's OpenAPI document (conformance/schemathesis.sh).

The document marks identity public keys with `format: ristretto255`: 32
bytes that must also decode as a Ristretto255 point, which no pattern can
state. schemathesis does not know the format, so without this hook it would
draw strings of the right shape that are not points, which the server
rightly refuses (400 invalid_identity_key). These are valid encodings (random
points; crates/postern-server/src/openapi.rs tests that each decodes).
"""

from hypothesis import strategies as st

import schemathesis

RISTRETTO255_POINTS = [
    "FnVh4jcGihks8AR7Nq1iO-moSSv3zzOc14jW-1OEKBg",
    "iLlzq3oxS2M-XZK70_DnZT3Lpcf0zlj2ikgcK7Qaz0M",
    "kgQQAdhV7yLEkO07OKMwkZ9vOWufznHj0Dehr4sN_w0",
    "yhLTYkMoxGhXDpPw1f7OPhE2EtDkI0Hatvu7a3fPLnc",
    "vJ5G85usbWNwLmyqCQtxddeuV_OZTN1gr2pRA978GVM",
    "tPCWDej33cLicIW67BntAvRQ19-Tl8Y7r0gTMQmYqis",
    "WF2Ndmfd8mKK7a40kJS8wxrl2ZKsIdWCP2fijlGvHWA",
    "xpNF3BQyCa8JVFzu9YgOHhuRkYFF8RNanVkit8IzzQo",
    "xr4F7vLxylvsMaveLbSQhXc45c8V9JkQIt7kxPOx0jQ",
    "7u4RRHU1B7JLfdQkl0lqyXHBxStyQJI3rRvDyCdXomE",
    "lnvDSgtaQSz2tY5QHs705ybugnzWFusBZ7-66D157AE",
    "dAbnKrraebnWGneV7J5t_qT56AOCfhh1AI4HQSc_VV8",
    "pAOZUEpuJKw2MWSOVNBX-YHUdXwkiyRkSCWJkQ8iKEo",
    "KnDAWe6uaTDQbb4jGNHgW1nDoeCyoXZlIR_KaOtluyI",
    "-oZCi-rtiaWdfegJxctpaRhPnpMZGHyIGhOYMY6cHxU",
    "ZLu0fK6YhyTrLUITzrgtjA0SLY3JPfODd8ynOQiTdVQ",
    "RMk_62HLCKRIZc4Eq6iQZH33Ak8DzSle44fqxcEKmxo",
    "jsTg_JgzNLvsrxC-tmHsHYGSq9kcVdjl3NsiLu55JzI",
    "KG764NZFD6dwM1vFU25IBBQF2_CvMaW6KMQza75vwGc",
    "RiD3AsXHWOGc-CnlRUYDu0lMwu26clDowEg0huISdWE",
    "ZJnvhHDRc-ivPc3wmnpfoymkMHiCeEaUrMez0iryKkY",
    "6JDs2hA_XOhUvGcbhkL_JVxORT8kE-hRg9-PCwSb6mU",
    "ZrpeJ6e1MJ6FzHtZeOjCEvdY5BtBSuvYwB-whKnovx8",
    "9jEYPJ5aO9p9Oqg3EwtTA0OfrzZc12mAKLG0aTgXWGk",
    "lt1Kpa3AQhvZb3UQ_B0gK43_h0noOUTOWYYub8iNf1A",
    "niYxWNJ5rti0dm2dlAWCEyZNdwSeJjo_NFF0G0es5Vc",
    "3JY5gMyU8rWdk_zV1Ut80j0WOudZG2gfwcu4McyXi1Y",
    "hK2OuHL1xNYc1HwAG_cHkff-fYC9OBLqzAwsEj6WhW0",
    "PFwKW2Q7wxcox-nJKjzfI-Dw-ulZfu_Xm1heHciBi0Q",
    "_FSel68T86HoWl8KbZaB3X0GOjYSkc__kf38hPVvQEM",
    "zgvbOU_nkSgxvCaJiX7FyGmSzPHIgTG7_MMPieO0FFg",
    "HN90PMQzjlTfOFgz86_Qu2VLlbXgj9j7i-VeZABduXA",
]

schemathesis.openapi.format("ristretto255", st.sampled_from(RISTRETTO255_POINTS))
