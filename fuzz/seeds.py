#!/usr/bin/env python3
"""Writes the seed inputs each fuzz target starts from (fuzz/corpus/<target>/
seed-*). The committed corpora are these plus what the fuzzer found,
minimised with `cargo fuzz cmin`; rerun this only to start afresh."""
import base64, json, os, pathlib, struct

ROOT = pathlib.Path(__file__).parent / 'corpus'

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b'=').decode()

def put(target, name, data):
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f'seed-{name}').write_bytes(data if isinstance(data, bytes) else data.encode())

# context: version 1 and 2 bodies laid out as context.rs documents, with a
# signature-sized tail of zeros (they reach the signature check and fail).
def body(version, user=b'alice@example.com', claims=1):
    out = bytes([version, 0x85]) + bytes(range(16)) + bytes(32)
    out += bytes([len(user)]) + user + struct.pack('<QQQ', 1, 3, 2)
    out += bytes(32) + b'\xff' + bytes(32) + bytes(16) + bytes([claims])
    for k in range(claims):
        out += bytes([1 + k % 6]) + bytes(32) + struct.pack('<QI', 5, 60)
    return out + struct.pack('<I', 7)
put('context', 'v1', body(1) + bytes(3309))
put('context', 'v1-no-claims', body(1, claims=0) + bytes(3309))
put('context', 'v2', body(2) + bytes([1, 1]) + bytes(32) + bytes(3309))
put('context', 'sign', b'S\x85' + bytes(48) + b'\x05alice' + os.urandom(200))
put('context', 'batch', b'B\x03' + (b'\x00' * 48 + b'\x03bob' + bytes(150)) * 3)

put('token', 'token', 'pst1.' + b64(bytes(range(48))))
put('token', 'session-id', b64(bytes(range(16))))
put('token', 'bad-prefix', 'pst2.' + b64(bytes(48)))

def jwt(header, claims, sig=b'\x00' * 64):
    return '.'.join([b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(sig)])
claims = {'iss': 'https://postern.test', 'sub': 'alice', 'sid': 'AAAAAAAAAAAAAAAAAAAAAA',
          'iat': 1799999990, 'nbf': 1799999990, 'exp': 1800000600, 'dbh': 'x'}
for target, alg, siglen in (('jwt_eddsa', 'EdDSA', 64), ('jwt_mldsa', 'ML-DSA-65', 3309)):
    put(target, 'jwt', jwt({'alg': alg, 'typ': 'JWT', 'kid': 'AAAAAAAAAAAAAAAA'}, claims, bytes(siglen)))
    put(target, 'none', jwt({'alg': 'none'}, claims, b''))
    put(target, 'crit', jwt({'alg': alg, 'kid': 'k', 'crit': ['exp']}, claims, bytes(siglen)))
    put(target, 'sign', b'S\x05alice\x10' + bytes(16) + b'\x01\x02\x10\x00\x00\x00\x03dbh' + bytes(6))

put('headers', 'cookie', 'laptop\n__Host-postern=pst1.abc; theme=dark\nother=1')
put('headers', 'json-device', '{"os":"linux","browser":"firefox"}\n__Host-postern=x')
put('headers', 'components', 'os=linux\0browser=firefox\0OS=mac')

put('upstream_answers', 'introspection', json.dumps(
    {'active': True, 'sub': 'alice', 'scope': 'read write', 'aud': ['api'], 'exp': 1800000000, 'sid': 's1'}))
put('upstream_answers', 'introspection-inactive', '{"active":false}')
put('upstream_answers', 'auth1', json.dumps(
    {'user': {'id': 'u1'}, 'session': {'id': 's1'}, 'expires_in': 3600, 'scopes': ['a'], 'audience': ['b']}))
put('upstream_answers', 'jwks', json.dumps({'keys': [{'kty': 'OKP', 'kid': 'k1'}, {'kid': 'k2'}]}))
put('upstream_answers', 'jwt', jwt({'alg': 'EdDSA', 'kid': 'k1'}, {'exp': 99}))

put('redis_entry', 'entry', b'd=000102030405060708090a0b0c0d0e0f\0u=1800000000000000000')
put('redis_entry', 'plus', b'd=+00102030405060708090a0b0c0d0e0f\0u=42')

put('biometric', 'raw', bytes([0, 1, 1]) + bytes(64))
put('biometric', 'vector-zero', bytes([1, 0]) + bytes(40))
put('biometric', 'vector-probe', bytes([1, 1]) + bytes(range(200)))
put('biometric', 'scores', bytes([2, 4]) + bytes(range(100)))
put('biometric', 'public-key', bytes([3, 1, 1]) + bytes(range(64)))

register = {'id': b64(b'cred'), 'rawId': b64(b'cred'), 'type': 'public-key',
            'response': {'attestationObject': b64(b'\xa3cfmtdnone'), 'clientDataJSON': b64(b'{}'),
                         'transports': ['internal', 'hybrid']},
            'clientExtensionResults': {'credProps': {'rk': True}}}
login = {'id': b64(b'cred'), 'rawId': b64(b'cred'), 'type': 'public-key',
         'response': {'authenticatorData': b64(bytes(37)), 'clientDataJSON': b64(b'{}'),
                      'signature': b64(bytes(70)), 'userHandle': b64(b'user')},
         'clientExtensionResults': {}}
put('webauthn', 'register', json.dumps(register))
put('webauthn', 'login', json.dumps(login))

put('identity_proof', 'zero', bytes(160))
put('identity_proof', 'generator',
    bytes.fromhex('e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76') + bytes(96) + b'alice')
put('identity_proof', 'secret', bytes([1]) + bytes(127) + b'bob')
