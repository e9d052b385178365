package io.catena.data.shard;

/** A token shard failed validation; the message names the file, the byte offset and what was expected. */
public final class ShardCorruptException extends IllegalStateException {

    private static final long serialVersionUID = 1L;
    private final String file;
    private final long offset;

    public ShardCorruptException(String file, long offset, String expected, String found) {
        super("corrupt token shard " + file + " at byte offset " + offset + ": expected " + expected + ", found " + found
                + ". Nothing from this shard is used. Re-run `catena prepare` into a fresh --out (or restore the file"
                + " from the run that wrote it) and check the storage it came from.");
        this.file = file;
        this.offset = offset;
    }

    public String file() {
        return file;
    }

    public long offset() {
        return offset;
    }
}
