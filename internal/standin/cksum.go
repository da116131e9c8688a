package standin

// posixCksum computes what POSIX `cksum` prints as its first field: a CRC-32
// (polynomial 0x04C11DB7, most significant bit first) over the data and
// then its length, complemented. makeself stores it as CRCsum.
type posixCksum struct {
	crc    uint32
	length uint64
}

var cksumTable = func() [256]uint32 {
	var t [256]uint32
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04C11DB7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

func (c *posixCksum) Write(p []byte) (int, error) {
	crc := c.crc
	for _, b := range p {
		crc = crc<<8 ^ cksumTable[byte(crc>>24)^b]
	}
	c.crc = crc
	c.length += uint64(len(p))
	return len(p), nil
}

// Sum32 returns the checksum of everything written so far.
func (c *posixCksum) Sum32() uint32 {
	crc := c.crc
	for n := c.length; n > 0; n >>= 8 {
		crc = crc<<8 ^ cksumTable[byte(crc>>24)^byte(n)]
	}
	return ^crc
}
