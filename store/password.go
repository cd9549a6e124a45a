package store

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// argonParams are the argon2id parameters new password hashes are made
// with: RFC 9106's second recommended set (t=3, m=64 MiB, p=4, a 16-byte
// salt, a 32-byte key). Tests lower them to stay fast; a hash records its
// own parameters, so changing them never breaks an existing hash.
var argonParams = argon2Params{time: 3, memory: 64 << 10, threads: 4, saltLen: 16, keyLen: 32}

type argon2Params struct {
	time    uint32
	memory  uint32 // KiB
	threads uint8
	saltLen int
	keyLen  int
}

// Bounds of the parameters a stored hash may ask for, so that a damaged
// or crafted row cannot make a login take all the memory there is.
const (
	maxArgonTime   = 16
	maxArgonMemory = 1 << 20 // KiB: 1 GiB
)

var b64 = base64.RawStdEncoding

// hashPassword is pw's argon2id hash as a PHC string:
// $argon2id$v=19$m=65536,t=3,p=4$SALT$HASH (unpadded standard base64).
func hashPassword(pw []byte) (string, error) {
	p := argonParams
	salt := make([]byte, p.saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey(pw, salt, p.time, p.memory, p.threads, uint32(p.keyLen))
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// checkPasswordHash reports whether pw matches the PHC string phc. The
// comparison takes the same time wherever the two differ.
func checkPasswordHash(phc string, pw []byte) (bool, error) {
	p, salt, want, err := parsePHC(phc)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey(pw, salt, p.time, p.memory, p.threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// dummyHash spends the time of checking a password against a hash made
// with the current parameters, for a login whose account does not exist.
func dummyHash(pw []byte) {
	p := argonParams
	argon2.IDKey(pw, make([]byte, p.saltLen), p.time, p.memory, p.threads, uint32(p.keyLen))
}

var errBadHash = errors.New("malformed password hash")

// parsePHC reads an argon2id PHC string, refusing parameters out of
// bounds.
func parsePHC(phc string) (p argon2Params, salt, key []byte, err error) {
	f := strings.Split(phc, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" || f[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, errBadHash
	}
	for _, kv := range strings.Split(f[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return p, nil, nil, errBadHash
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return p, nil, nil, errBadHash
		}
		switch k {
		case "m":
			p.memory = uint32(n)
		case "t":
			p.time = uint32(n)
		case "p":
			if n > 255 {
				return p, nil, nil, errBadHash
			}
			p.threads = uint8(n)
		default:
			return p, nil, nil, errBadHash
		}
	}
	if p.time < 1 || p.time > maxArgonTime || p.memory < 8*uint32(max(p.threads, 1)) || p.memory > maxArgonMemory || p.threads < 1 {
		return p, nil, nil, errBadHash
	}
	if salt, err = b64.DecodeString(f[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, errBadHash
	}
	if key, err = b64.DecodeString(f[5]); err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errBadHash
	}
	return p, salt, key, nil
}
