package io.catena.ps;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The module's own structure, checked on the compiled classes (their constant pools name every class they use): the
 * wire protocol knows nothing of the model or of the rest of the server, the client uses no server class, and no public
 * signature of the module forces ND4J on its callers.
 */
class ModuleBoundariesTest {
    /** Classes only the server runs; a client that loaded one would drag the server into every worker. */
    private static final Pattern SERVER_CLASS = Pattern.compile("io/catena/ps/(ParameterServer|ServerConductor|GradientAccumulator|"
            + "ServerModel|SnapshotWriter|ChainGrowth|ResponseSender|PullServer|ClientSession|SealedParams|ServerMetrics|"
            + "ParameterServerMain)(?![A-Za-z0-9_])");

    @Test
    void theProtocolDependsOnNothingOfTheModelOrTheServer() throws IOException {
        List<Path> protocol = classFiles("protocol");
        assertFalse(protocol.isEmpty());
        Pattern outside = Pattern.compile("io/catena/(model/|ps/(?!protocol/))");
        for (Path c : protocol) {
            Matcher m = outside.matcher(constants(c));
            assertFalse(m.find(), () -> c.getFileName() + " uses " + m.group());
        }
    }

    @Test
    void theClientUsesNoServerClass() throws IOException {
        List<Path> client = new ArrayList<>();
        for (Path c : classFiles("")) {
            String n = c.getFileName().toString();
            if (n.startsWith("ParameterServerClient") || n.startsWith("ClientExchange") || n.startsWith("TransportContext")
                    || n.startsWith("ServerLayout") || n.startsWith("Transport.") || n.startsWith("SharedDriver")) {
                client.add(c);
            }
        }
        assertTrue(client.size() >= 6, "client classes found: " + client);
        for (Path c : client) {
            Matcher m = SERVER_CLASS.matcher(constants(c));
            assertFalse(m.find(), () -> c.getFileName() + " uses the server's " + m.group());
        }
    }

    @Test
    void noPublicSignatureNamesAnNd4jType() throws IOException, ClassNotFoundException {
        int checked = 0;
        for (Path f : Stream.concat(classFiles("").stream(), classFiles("protocol").stream()).toList()) {
            String rel = root().relativize(f).toString().replace('/', '.').replace('\\', '.');
            Class<?> c = Class.forName(rel.substring(0, rel.length() - ".class".length()), false, getClass().getClassLoader());
            if (!Modifier.isPublic(c.getModifiers())) {
                continue;
            }
            checked++;
            for (Method m : c.getMethods()) {
                if (m.getDeclaringClass() != Object.class) {
                    assertNoNd4j(c, m.toGenericString());
                }
            }
            for (Constructor<?> k : c.getConstructors()) {
                assertNoNd4j(c, k.toGenericString());
            }
            for (Field fl : c.getFields()) {
                assertNoNd4j(c, fl.toGenericString());
            }
        }
        assertTrue(checked > 10, "public classes checked: " + checked);
    }

    private static void assertNoNd4j(Class<?> c, String signature) {
        assertFalse(signature.contains("org.nd4j"), () -> c.getName() + ": " + signature);
    }

    /** The class files of package io.catena.ps (+ sub, e.g. "protocol"), not below it. */
    private static List<Path> classFiles(String sub) throws IOException {
        Path dir = root().resolve("io/catena/ps").resolve(sub);
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.toString().endsWith(".class")).sorted().toList();
        }
    }

    private static Path root() {
        try {
            return Path.of(ParameterServerClient.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** A class file's bytes as text: its constant pool spells every class it refers to. */
    private static String constants(Path classFile) throws IOException {
        return new String(Files.readAllBytes(classFile), StandardCharsets.ISO_8859_1);
    }

    @Test
    void classFilesAreFound() throws IOException {
        assertEquals("classes", root().getFileName().toString(), "the checks read the compiled classes of this module");
    }
}
