# The edges' service identities, for deploy/make-secrets.sh and deploy/k8s/make-secrets.sh (both
# source this file; it runs nothing by itself). Needs openssl.
#
# Each edge is a registered client of the auth service that proves who it is with its own key
# (private_key_jwt, RFC 7523): an ES256 key on P-256, kept by the edge as a private JWK file
# (GATEPASS_<EDGE>_CLIENT_KEY_FILE). The auth service learns the public halves from its clients
# file (GATEPASS_AUTH_CLIENTS_FILE), which declares both edges and holds no secret.
#
# What each edge is registered as (the audiences it may call, its scopes, the audience it serves)
# is what the edge states beside its code: CLIENT in edge-service-{mail,video}/src/*/app.py.
# tests/deploy/test_make_secrets.py checks that the file made here says the same.

# Standard input as unpadded base64url (RFC 7515, section 2).
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# bytes FILE OFFSET COUNT: COUNT bytes of FILE from OFFSET (0-based).
bytes() { dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null; }

# make_client_key FILE: a new P-256 key, written to FILE (mode 0600, never over a file that
# exists) as a private JWK on one line: kty, crv, x, y, d, kid (its RFC 7638 thumbprint), alg
# ES256, use sig. Prints nothing.
make_client_key() {
    key_file="$1"
    der="$key_file.der"
    # openssl writes the key as SEC1 DER (RFC 5915): for a named P-256 curve always 121 bytes,
    # the 32-byte private scalar at offset 7 and the uncompressed point 04 || x || y at the end.
    # The fixed bytes around them are checked, so that nothing else is ever read as a key.
    (umask 077 && openssl ecparam -name prime256v1 -genkey -noout |
        openssl ec -outform DER -out "$der" 2>/dev/null)
    head="$(bytes "$der" 0 7 | od -An -v -tx1 | tr -d ' \n')"
    middle="$(bytes "$der" 39 18 | od -An -v -tx1 | tr -d ' \n')"
    size="$(wc -c <"$der" | tr -d ' ')"
    if [ "$size" != 121 ] || [ "$head" != 30770201010420 ] ||
        [ "$middle" != a00a06082a8648ce3d030107a14403420004 ]; then
        rm -f "$der"
        echo "client-keys.sh: openssl wrote a P-256 key in an unexpected form" >&2
        return 1
    fi
    d="$(bytes "$der" 7 32 | b64url)"
    x="$(bytes "$der" 57 32 | b64url)"
    y="$(bytes "$der" 89 32 | b64url)"
    rm -f "$der"
    kid="$(printf '{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' "$x" "$y" |
        openssl dgst -sha256 -binary | b64url)"
    (
        umask 077
        set -C # never over an existing file
        printf '{"kty":"EC","crv":"P-256","x":"%s","y":"%s","d":"%s","kid":"%s","alg":"ES256","use":"sig"}\n' \
            "$x" "$y" "$d" "$kid" >"$key_file"
    ) || return 1
    d=""
}

# public_jwk FILE: the public half of the private JWK in FILE (one this file made, or an ES256
# or EdDSA key of `gatepass-client-key`): the JWK without "d". Refuses any other private member.
public_jwk() {
    public="$(tr -d '\n' <"$1" | sed 's/, *"d" *: *"[^"]*"//')"
    if printf '%s' "$public" | grep -Eq '"(d|p|q|dp|dq|qi|k)" *:'; then
        echo "client-keys.sh: $1 is not a private JWK of an EC or OKP key" >&2
        return 1
    fi
    printf '%s' "$public"
}

# clients_file MAIL_PUBLIC_JWK VIDEO_PUBLIC_JWK: the auth service's clients file, on one line.
# mail exchanges its users' tokens for video:read at video (a message's video) and reads the
# revocation feed; video notifies uploaders in their mail inbox (mail:notify) with its own token.
clients_file() {
    printf '{"clients": ['
    printf '{"client_id": "mail", "kind": "service", "auth_method": "private_key_jwt", '
    printf '"audiences": ["auth", "video"], "scopes": ["revocations:read", "video:read"], '
    printf '"resource": "mail", "jwks": {"keys": [%s]}}, ' "$1"
    printf '{"client_id": "video", "kind": "service", "auth_method": "private_key_jwt", '
    printf '"audiences": ["auth", "mail"], "scopes": ["mail:notify", "revocations:read"], '
    printf '"resource": "video", "jwks": {"keys": [%s]}}' "$2"
    printf ']}\n'
}
