package console

// TODO(issue 9): this screen is being built.
func (c *Console) userCreatePages() []page { return nil }
