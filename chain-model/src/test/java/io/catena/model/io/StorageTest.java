package io.catena.model.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.io.storage.HadoopStorage;
import io.catena.model.io.storage.LocalStorage;
import io.catena.model.io.storage.Storage;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Checkpoints reach their file system through {@link Storage}: local paths and file: URIs through java.nio, every
 * other scheme through the Hadoop provider found as a service; both write the same checkpoint.
 */
class StorageTest {

    @Test
    void localPathsUseJavaNioAndOtherSchemesTheRegisteredHadoopProvider(@TempDir Path dir) {
        assertSame(LocalStorage.INSTANCE, Storage.forLocation(dir.toString()));
        assertSame(LocalStorage.INSTANCE, Storage.forLocation(dir.toUri().toString()));
        assertSame(LocalStorage.INSTANCE, Storage.forLocation("relative/ckpt"));
        assertInstanceOf(HadoopStorage.class, Storage.forLocation("hdfs://namenode:8020/ckpt"));
        assertInstanceOf(HadoopStorage.class, Storage.forLocation("s3a://bucket/ckpt"));
    }

    @Test
    void localStorageRefusesToOverwriteAndRenamesOnlyOntoNothing(@TempDir Path dir) throws Exception {
        Storage fs = LocalStorage.INSTANCE;
        String a = fs.child(dir.toString(), "sub/a.txt");
        try (OutputStream o = fs.create(a)) {
            o.write("x".getBytes(StandardCharsets.UTF_8));
        }
        assertThrows(java.io.IOException.class, () -> fs.create(a));
        String b = fs.child(dir.toString(), "sub/b.txt");
        assertTrue(fs.rename(a, b));
        assertFalse(fs.exists(a));
        assertFalse(fs.rename(a, b), "a missing source is not renamed");
        assertThrows(java.io.FileNotFoundException.class, () -> fs.open(a));
        assertEquals(1, fs.list(fs.child(dir.toString(), "sub")).size());
        assertTrue(fs.remainingBytes(b) > 0);
        assertTrue(fs.delete(fs.child(dir.toString(), "sub"), true));
        assertFalse(fs.exists(b));
    }

    @Test
    void hadoopAndLocalStorageWriteTheSameCheckpoint(@TempDir Path dir) {
        TrainingState st = CheckpointFaultsTest.state(3);
        String viaLocal = new CheckpointStore().save(dir.resolve("local").toString(), st);
        // the Hadoop file system on a file: URI, as HadoopStorage.resolver would use it for a remote scheme
        HadoopStorage hadoop = new HadoopStorage(new org.apache.hadoop.conf.Configuration());
        String viaHadoop = new CheckpointStore(location -> hadoop).save(dir.resolve("hadoop").toUri().toString(), st);
        TrainingState a = new CheckpointStore().load(viaHadoop, false);
        TrainingState b = new CheckpointStore(location -> hadoop).load(dir.resolve("local").toUri().toString(), false);
        assertEquals(st.config(), a.config());
        for (int i = 0; i < (int) st.params().layout().size(); i++) {
            assertEquals(st.params().buf().get(i), a.params().buf().get(i));
            assertEquals(st.params().buf().get(i), b.params().buf().get(i));
        }
        assertTrue(viaLocal.endsWith("step-00000003"), viaLocal);
        assertTrue(viaHadoop.endsWith("step-00000003"), viaHadoop);
    }
}
