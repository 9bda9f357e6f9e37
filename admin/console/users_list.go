package console

// TODO(issue 9): this screen is being built.
func (c *Console) userListPages() []page { return nil }
