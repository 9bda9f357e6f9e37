package scriptrun

// Arguments without allocations. Appending a string, or an int64 outside
// 0..255, to Args boxes it: one allocation per argument, ten on a
// fixed-cost charge. Str and Int instead keep the value in storage the
// pooled call owns and append a pointer to it, which fits an interface
// without an allocation; go-redis writes a *string or *int64 argument as
// its value. The storage lives as long as the call, which is never reused
// before its command is done with (Put comes after the answer is read).

// typedArgs is how many string and how many integer arguments a call
// holds unboxed; beyond that they are boxed, which is still correct.
const typedArgs = 24

// Str appends a string argument.
func (c *Call) Str(s string) {
	if c.nStrs == len(c.strs) {
		c.Args = append(c.Args, s)
		return
	}
	c.strs[c.nStrs] = s
	c.Args = append(c.Args, &c.strs[c.nStrs])
	c.nStrs++
}

// Int appends an integer argument.
func (c *Call) Int(n int64) {
	if c.nInts == len(c.ints) {
		c.Args = append(c.Args, n)
		return
	}
	c.ints[c.nInts] = n
	c.Args = append(c.Args, &c.ints[c.nInts])
	c.nInts++
}

// StringArg is argument i as a string, however it was appended (Str or a
// plain string in Args); "" for an argument of another type.
func (c *Call) StringArg(i int) string {
	switch v := c.Args[i].(type) {
	case string:
		return v
	case *string:
		return *v
	}
	return ""
}

// resetArgs empties the typed storage, dropping the strings it held so
// a pooled call keeps nothing alive.
func (c *Call) resetArgs() {
	clear(c.strs[:c.nStrs])
	c.nStrs, c.nInts = 0, 0
}
