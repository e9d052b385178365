package io.catena.data.prepare;

import org.apache.spark.Partitioner;

/** Partitions documents by (split, bucket): partitions [0, train) are train buckets, then val buckets. */
final class SplitBucketPartitioner extends Partitioner {

    private static final long serialVersionUID = 1L;
    final int trainBuckets;
    final int valBuckets;
    final long seed;
    final long valPpm;

    SplitBucketPartitioner(int trainBuckets, int valBuckets, long seed, long valPpm) {
        this.trainBuckets = trainBuckets;
        this.valBuckets = valBuckets;
        this.seed = seed;
        this.valPpm = valPpm;
    }

    @Override
    public int numPartitions() {
        return trainBuckets + valBuckets;
    }

    @Override
    public int getPartition(Object key) {
        long h = (Long) key;
        return DocHash.isVal(h, seed, valPpm) ? trainBuckets + DocHash.bucket(h, valBuckets) : DocHash.bucket(h, trainBuckets);
    }

    String split(int partition) {
        return partition < trainBuckets ? "train" : "val";
    }

    int bucket(int partition) {
        return partition < trainBuckets ? partition : partition - trainBuckets;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SplitBucketPartitioner p && p.trainBuckets == trainBuckets && p.valBuckets == valBuckets
                && p.seed == seed && p.valPpm == valPpm;
    }

    @Override
    public int hashCode() {
        return java.util.Objects.hash(trainBuckets, valBuckets, seed, valPpm);
    }
}
