package io.catena.bench.ps;

import java.nio.ByteBuffer;
import java.security.Provider;
import java.security.SecureRandom;
import java.security.Security;
import java.util.Locale;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * How fast can one core seal and open AES-256-GCM here, by provider? The parameter server's crypto floor is set by
 * this rate (issue 16: 7 passes over the vector per 2-worker round). Measures the frames the server uses (1 MiB
 * payload, 72-byte header as associated data, direct buffers, one cipher per way re-initialised per frame with a
 * counter nonce) after a JIT warm-up, one thread.
 *
 * <p>{@code java ... AeadProviders [SunJCE|Conscrypt|ACCP] [rounds]}: SunJCE is the JDK's (AES-NI + CLMUL intrinsics);
 * Conscrypt (BoringSSL) and ACCP (Amazon Corretto Crypto Provider, AWS-LC) are loaded by name from the class path when
 * given. Prints one JSON line.
 */
public final class AeadProviders {
    public static void main(String[] args) throws Exception {
        String which = args.length > 0 ? args[0] : "SunJCE";
        int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 12;
        String provider = switch (which) {
            case "Conscrypt" -> {
                Provider p = (Provider) Class.forName("org.conscrypt.OpenSSLProvider").getConstructor().newInstance();
                Security.insertProviderAt(p, 1);
                yield p.getName();
            }
            case "ACCP" -> {
                Class.forName("com.amazon.corretto.crypto.provider.AmazonCorrettoCryptoProvider").getMethod("install").invoke(null);
                yield "AmazonCorrettoCryptoProvider";
            }
            default -> which;
        };
        int frame = 1 << 20;
        int perRound = 64;
        byte[] key = new byte[32];
        new SecureRandom().nextBytes(key);
        SecretKeySpec k = new SecretKeySpec(key, "AES");
        ByteBuffer plain = ByteBuffer.allocateDirect(frame);
        ByteBuffer sealed = ByteBuffer.allocateDirect(frame + 16);
        ByteBuffer opened = ByteBuffer.allocateDirect(frame + 16);
        Cipher enc = Cipher.getInstance("AES/GCM/NoPadding", provider);
        Cipher dec = Cipher.getInstance("AES/GCM/NoPadding", provider);
        byte[] iv = new byte[12];
        byte[] aad = new byte[72];
        long counter = 0;
        double bestSeal = 0;
        double bestOpen = 0;
        // the first half of the rounds is the JIT warm-up (the JDK's intrinsics engage only once compiled)
        for (int round = 0; round < rounds; round++) {
            long sealNs = 0;
            long openNs = 0;
            for (int i = 0; i < perRound; i++) {
                counter++;
                for (int b = 0; b < 8; b++) {
                    iv[4 + b] = (byte) (counter >>> (8 * b));
                }
                GCMParameterSpec spec = new GCMParameterSpec(128, iv);
                plain.clear();
                sealed.clear();
                sealNs += timed(enc, Cipher.ENCRYPT_MODE, k, spec, aad, plain, sealed);
                sealed.flip();
                opened.clear();
                openNs += timed(dec, Cipher.DECRYPT_MODE, k, spec, aad, sealed, opened);
            }
            if (round >= rounds / 2) {
                bestSeal = Math.max(bestSeal, (double) perRound * frame / sealNs);
                bestOpen = Math.max(bestOpen, (double) perRound * frame / openNs);
            }
        }
        System.out.printf(Locale.ROOT, "{\"provider\": \"%s\", \"java\": \"%s\", \"seal_gb_per_s\": %.2f, \"open_gb_per_s\": %.2f}%n",
                enc.getProvider().getName() + " " + enc.getProvider().getVersionStr(), System.getProperty("java.vm.version"), bestSeal,
                bestOpen);
    }

    /** Nanoseconds of one seal or open of {@code in} into {@code out}, the cipher initialised for this frame. */
    private static long timed(Cipher c, int mode, SecretKeySpec k, GCMParameterSpec spec, byte[] aad, ByteBuffer in, ByteBuffer out)
            throws Exception {
        long t0 = System.nanoTime();
        c.init(mode, k, spec);
        c.updateAAD(aad);
        c.doFinal(in, out);
        return System.nanoTime() - t0;
    }
}
