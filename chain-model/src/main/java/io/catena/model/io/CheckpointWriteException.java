package io.catena.model.io;

import io.catena.model.NotRetryableException;

/**
 * A checkpoint could not be written (a full disk, a failing file system). By the time it is thrown the
 * partial directory is removed and the previous checkpoint is untouched; the message names the path, the
 * cause and, where the file system tells, the free space and what the checkpoint needs. The CLI exits 3;
 * a distributed run fails once with it (rerunning the stage would fill the same disk).
 */
public final class CheckpointWriteException extends NotRetryableException {
    public CheckpointWriteException(String message, Throwable cause) {
        super(message, cause);
    }
}
