package fsm

// applyUser applies the user and session commands.
func (f *FSM) applyUser(t CommandType, body []byte) any {
	switch t {
	case PutUserType:
		var c PutUser
		if err := decode(t, body, &c); err != nil {
			return err
		}
		stored, err := f.store.PutUser(c.User, c.Create, c.Keep)
		if err != nil {
			return err
		}
		return PutUserResult{Conflict: !stored}
	case DeleteUserType:
		var c DeleteUser
		if err := decode(t, body, &c); err != nil {
			return err
		}
		return f.store.DeleteUser(c.Name)
	case PutSessionType:
		var c PutSession
		if err := decode(t, body, &c); err != nil {
			return err
		}
		return f.store.PutSession(c.Session, c.Now)
	case DeleteSessionType:
		var c DeleteSession
		if err := decode(t, body, &c); err != nil {
			return err
		}
		f.store.DeleteSession(c.ID)
		return nil
	}
	return nil
}
