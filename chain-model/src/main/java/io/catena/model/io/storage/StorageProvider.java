package io.catena.model.io.storage;

/** A {@link Storage} for URI schemes beyond local files, registered in META-INF/services. */
public interface StorageProvider {
    boolean handles(String scheme);

    Storage storage(String location);
}
