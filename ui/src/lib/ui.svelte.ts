/** UI state shared between the keyboard handler and the views (no backend data here). */
class UiState {
  /** The model switcher (⌘K) is open. */
  pickerOpen = $state(false);
  /** A reply is streaming in the chat view. */
  streaming = $state(false);
  /** Incremented to ask the chat view for a new chat (⌘N). */
  newChatTick = $state(0);
  /** Stops the streaming reply; set by the chat view. */
  stop: (() => void) | null = null;

  /** Whether any popup is open (Esc closes it first). */
  get overlayOpen(): boolean {
    return this.pickerOpen;
  }
}

/** The one UI state. */
export const ui = new UiState();
