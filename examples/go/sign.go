// Sign a consolegate console ticket in Go, as an engine would (golang-jwt v5).
//
//	go run . [-ttl 120s] [-sub alice] [-aud hv1] engine.key 127.0.0.1 5901
//
// Prints the ticket. The key is the engine's Ed25519 private key, PKCS#8 PEM, as made
// by `consolegate keygen` or `openssl genpkey -algorithm ed25519`. The proxy trusts the
// matching .pub file (in /etc/consolegate/keys on a packaged install).
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// keyID is the RFC 7638 JWK thumbprint of an Ed25519 public key: the proxy's key id.
func keyID(pub ed25519.PublicKey) string {
	jwk := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(jwk))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// signTicket returns a ticket for host:port valid for ttl (keep it short: the proxy
// refuses lifetimes over its max_lifetime, 600 s by default).
func signTicket(key ed25519.PrivateKey, host string, port int, ttl time.Duration, sub, aud string) (string, error) {
	jti := make([]byte, 16) // audit logs, and single_use proxies need it
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	now := time.Now()
	claims := jwt.MapClaims{
		"host": host,
		"port": port,
		"iat":  now.Unix(),
		"exp":  now.Add(ttl).Unix(),
		"jti":  hex.EncodeToString(jti),
	}
	if sub != "" {
		claims["sub"] = sub
	}
	if aud != "" {
		claims["aud"] = aud
	}
	token := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	token.Header["kid"] = keyID(key.Public().(ed25519.PublicKey))
	return token.SignedString(key)
}

func main() {
	ttl := flag.Duration("ttl", 120*time.Second, "lifetime of the ticket")
	sub := flag.String("sub", "", "user the ticket is issued to (audit logs)")
	aud := flag.String("aud", "", "the proxy's audience name, if it requires one")
	flag.Parse()
	if flag.NArg() != 3 {
		fmt.Fprintln(os.Stderr, "usage: go run . [-ttl 120s] [-sub USER] [-aud NAME] KEY.pem HOST PORT")
		os.Exit(2)
	}
	port, err := strconv.Atoi(flag.Arg(2))
	if err != nil || port < 1 || port > 65535 {
		fmt.Fprintf(os.Stderr, "%q is not a TCP port\n", flag.Arg(2))
		os.Exit(2)
	}
	pem, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	parsed, err := jwt.ParseEdPrivateKeyFromPEM(pem)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: not an Ed25519 key\n", flag.Arg(0))
		os.Exit(1)
	}
	ticket, err := signTicket(key, flag.Arg(1), port, *ttl, *sub, *aud)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ticket)
}
