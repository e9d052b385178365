package io.catena.ps.protocol;

import java.security.GeneralSecurityException;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/** HKDF with HMAC-SHA256 (RFC 5869): extract a pseudo-random key from input keying material, expand it into keys. */
public final class Hkdf {
    public static final int HASH_LENGTH = 32;

    private Hkdf() {
    }

    /** HKDF-Extract(salt, ikm) = HMAC-SHA256(salt, ikm); an empty or null salt is HashLen zeros. */
    public static byte[] extract(byte[] salt, byte[] ikm) {
        Mac mac = hmac(salt == null || salt.length == 0 ? new byte[HASH_LENGTH] : salt);
        return mac.doFinal(ikm);
    }

    /** HKDF-Expand(prk, info, length): T(1) | T(2) | ... with T(i) = HMAC(prk, T(i-1) | info | i), at most 255 x 32 bytes. */
    public static byte[] expand(byte[] prk, byte[] info, int length) {
        if (length < 1 || length > 255 * HASH_LENGTH) {
            throw new IllegalArgumentException("HKDF-Expand length must be in [1, " + 255 * HASH_LENGTH + "], got " + length);
        }
        Mac mac = hmac(prk);
        byte[] out = new byte[length];
        byte[] t = new byte[0];
        for (int i = 1, done = 0; done < length; i++) {
            mac.update(t);
            mac.update(info == null ? new byte[0] : info);
            mac.update((byte) i);
            t = mac.doFinal();
            int n = Math.min(t.length, length - done);
            System.arraycopy(t, 0, out, done, n);
            done += n;
        }
        return out;
    }

    /** Extract then expand. */
    public static byte[] derive(byte[] salt, byte[] ikm, byte[] info, int length) {
        return expand(extract(salt, ikm), info, length);
    }

    /** A new HMAC-SHA256 keyed with {@code key}. */
    static Mac hmac(byte[] key) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            return mac;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is not available in this JVM: " + e.getMessage(), e);
        }
    }
}
