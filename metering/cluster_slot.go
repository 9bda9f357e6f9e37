package metering

import "strings"

// clusterSlots is how many hash slots a Redis Cluster has.
const clusterSlots = 16384

// ClusterSlot is the Redis Cluster slot of a key: CRC16 (XMODEM) of its
// hash tag (the part between the first "{" and the next "}", when that
// is not empty) or of the whole key, modulo 16384, as Redis computes it.
func ClusterSlot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % clusterSlots
}
