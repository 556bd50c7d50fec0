#pragma once
// A FIFO of nodes that carry their own links (`Node::prev`, `Node::next`, null while the
// node is in no list): no allocation, O(1) removal from the middle and O(1) membership.
// The waiters of futures and of the coordination primitives, and the thread pool's job
// queue, are all one.

namespace corio::detail {

template <class Node>
class intrusive_fifo {
public:
    intrusive_fifo() = default;
    intrusive_fifo(const intrusive_fifo&) = delete;
    intrusive_fifo& operator=(const intrusive_fifo&) = delete;

    [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
    [[nodiscard]] Node* front() const noexcept { return head_; }

    void push_back(Node* n) noexcept {
        n->next = nullptr;
        n->prev = tail_;
        if (tail_ != nullptr)
            tail_->next = n;
        else
            head_ = n;
        tail_ = n;
    }

    /// n must be in this list.
    void remove(Node* n) noexcept {
        if (n->prev != nullptr)
            n->prev->next = n->next;
        else
            head_ = n->next;
        if (n->next != nullptr)
            n->next->prev = n->prev;
        else
            tail_ = n->prev;
        n->prev = n->next = nullptr;
    }

    /// The oldest node, unlinked; nullptr when empty.
    Node* pop_front() noexcept {
        Node* n = head_;
        if (n != nullptr) remove(n);
        return n;
    }

    /// Whether n is queued, in O(1): a node off every list has no links (remove and
    /// pop_front clear them), and only the head of a list has no prev. n must be in this
    /// list or in none: a node does not know which list holds it.
    [[nodiscard]] bool contains(const Node* n) const noexcept { return n->prev != nullptr || head_ == n; }

private:
    Node* head_ = nullptr;
    Node* tail_ = nullptr;
};

}  // namespace corio::detail
